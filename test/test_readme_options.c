/* test_readme_options.c -- the README's options table matches the option table in the library */
#include "check.h"
#include "memtally.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_readme_options README.md\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  CHECK(f != NULL);
  if (!f) return check_summary("test_readme_options");
  static char text[1 << 20];
  size_t n = fread(text, 1, sizeof text - 1, f);
  text[n] = 0;
  fclose(f);
  size_t rows = 0;
  for (const char *p = text; (p = strstr(p, "\n| `MEMTALLY_")) != NULL; p++) rows++; /* table rows only */
  for (size_t i = 0; i < mt_option_count(); i++) {
    mt_option_info o;
    mt_option_get_info(i, &o);
    char row[1024];
    snprintf(row, sizeof row, "| `%s` | %s | %s |", o.name, o.default_text, o.description);
    CHECKF(strstr(text, row) != NULL, "README lacks the row:\n%s", row);
  }
  CHECKF(rows == mt_option_count(), "README has %zu option rows, the library %zu", rows, mt_option_count());
  return check_summary("test_readme_options");
}
