-- workload.sql -- tables, indexes, joins, text and aggregates with known results
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, city INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, user INTEGER, amount INTEGER, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
INSERT INTO users SELECT x, 'user' || x, x % 37 FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000)
INSERT INTO orders SELECT x, (x * 7919) % 20000 + 1, (x * 31) % 1000, printf('%.*c', x % 200, 'n') FROM c;
CREATE INDEX orders_user ON orders(user);
SELECT count(*), sum(amount), sum(length(note)) FROM orders;
SELECT u.city, count(*), sum(o.amount) FROM users u JOIN orders o ON o.user = u.id
  GROUP BY u.city ORDER BY sum(o.amount) DESC LIMIT 3;
SELECT group_concat(name, ',') FROM (SELECT name FROM users WHERE id % 5000 = 0 ORDER BY name);
DELETE FROM orders WHERE amount < 500;
VACUUM;
SELECT count(*), max(length(note)) FROM orders;
