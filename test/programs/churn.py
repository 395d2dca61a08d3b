# churn.py -- dicts, strings and json in volume, with a result known in advance
import hashlib, json

records = []
for i in range(60000):
    rec = {"id": i, "name": "user%05d" % i, "tags": ["t%d" % (i % k) for k in range(1, 6)],
           "score": (i * 7919) % 1000 / 10.0}
    records.append(rec)
text = json.dumps(records, sort_keys=True)
back = json.loads(text)
index = {r["name"]: r for r in back if r["id"] % 3 == 0}
words = " ".join(r["name"] for r in back).split()
total = sum(r["score"] for r in back)
digest = hashlib.sha256(text.encode()).hexdigest()[:16]
print(len(back), len(index), len(words), round(total, 1), len(text), digest)
