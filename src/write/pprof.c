/* pprof.c -- a snapshot of the stack table encoded as pprof's profile.proto
 *
 * Four sample types (alloc_objects, alloc_space, inuse_objects,
 * inuse_space), one location per distinct program counter, functions by
 * name, labels for the thread and the region, the kind of profile as the
 * comment. Field numbers come from pprof_fields.h, which the memtally
 * command's reader shares. Names come through the caller's symbolizer;
 * all memory is mapped for the purpose (mt_buf), none from the heap. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "pprof.h"
#include "pprof_fields.h"

/* ---- string and id tables built per profile ---- */

typedef struct mt_strtab {
  mt_buf text;     /* the strings, NUL-terminated, back to back */
  mt_buf offs;     /* uint32 offset of each string */
  mt_buf index;    /* open addressing: uint32 string number + 1 */
  size_t slots, count;
} mt_strtab;

static uint64_t mt_hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ULL;
  return h;
}

static uint64_t mt_str(mt_strtab *t, const char *s) {
  size_t n = strlen(s);
  if (t->count * 2 >= t->slots) { /* grow and rehash */
    size_t slots = t->slots ? t->slots * 2 : 4096;
    mt_buf idx = {0};
    uint32_t *v = mt__buf_reserve(&idx, slots * 4);
    if (v == NULL) return 0;
    memset(v, 0, slots * 4);
    idx.len = slots * 4;
    const uint32_t *offs = (const uint32_t *)t->offs.data;
    for (size_t i = 0; i < t->count; i++) {
      const char *x = (const char *)t->text.data + offs[i];
      for (size_t j = mt_hash_bytes(x, strlen(x)) & (slots - 1);; j = (j + 1) & (slots - 1))
        if (v[j] == 0) {
          v[j] = (uint32_t)i + 1;
          break;
        }
    }
    mt__buf_free(&t->index);
    t->index = idx;
    t->slots = slots;
  }
  uint32_t *v = (uint32_t *)t->index.data;
  size_t j = mt_hash_bytes(s, n) & (t->slots - 1);
  for (;; j = (j + 1) & (t->slots - 1)) {
    if (v[j] == 0) break;
    const char *x = (const char *)t->text.data + ((const uint32_t *)t->offs.data)[v[j] - 1];
    if (strcmp(x, s) == 0) return v[j] - 1;
  }
  uint32_t off = (uint32_t)t->text.len;
  mt__buf_put(&t->text, s, n + 1);
  mt__buf_put(&t->offs, &off, sizeof off);
  v[j] = (uint32_t)++t->count;
  return t->count - 1;
}

/* pc -> location id (1-based), open addressing */
typedef struct mt_pcmap {
  mt_buf keys, vals;
  size_t slots;
} mt_pcmap;

static uint32_t *mt_pc_slot(mt_pcmap *m, uintptr_t pc) {
  uintptr_t *k = (uintptr_t *)m->keys.data;
  for (size_t j = (size_t)((pc * 0x9e3779b97f4a7c15ULL) >> 20) & (m->slots - 1);; j = (j + 1) & (m->slots - 1)) {
    if (k[j] == pc || k[j] == 0) {
      k[j] = pc;
      return &((uint32_t *)m->vals.data)[j];
    }
  }
}

static void mt_value_type(mt_buf *msg, mt_buf *tmp, unsigned field, uint64_t type, uint64_t unit) {
  mt__buf_reset(tmp);
  mt__pb_uint(tmp, PB_VALUE_TYPE_TYPE, type);
  mt__pb_uint(tmp, PB_VALUE_TYPE_UNIT, unit);
  mt__pb_bytes(msg, field, tmp->data, tmp->len);
}

static int64_t mt_round(double x) { return x <= 0 ? 0 : (int64_t)(x + 0.5); }

/* The samples of a lifetimes profile: one per entry of snap->lives. */
static void mt_encode_lives(const mt_prof_snapshot *snap, const mt_pprof_symbols *sym, mt_strtab *st, mt_pcmap *pcs,
                            mt_buf *tmp, mt_buf *sub, mt_buf *out) {
  uint64_t ids[MT_PROF_MAX_FRAMES];
  uint64_t life_key = mt_str(st, "lifetime"), ns_unit = mt_str(st, "nanoseconds"), freed_key = mt_str(st, "freed_by"),
           thread_key = mt_str(st, "free_thread"), other = mt_str(st, "other"), same = mt_str(st, "same"),
           in_use = mt_str(st, "(in use)"), unknown = mt_str(st, "(not recorded)");
  char names[1024];
  /* each freeing stack is named once: its string's number + 1, by stack */
  mt_buf named = {0};
  uint64_t *name_of = NULL;
  name_of = mt__buf_reserve(&named, sizeof(uint64_t) * (snap->nstacks ? snap->nstacks : 1));
  if (name_of != NULL) memset(name_of, 0, sizeof(uint64_t) * (snap->nstacks ? snap->nstacks : 1));
  for (size_t i = 0; i < snap->nlives; i++) {
    const mt_prof_life *l = &snap->lives[i];
    if (l->alloc_stack >= snap->nstacks) continue;
    const mt_prof_stack *s = &snap->stacks[l->alloc_stack];
    int64_t v[3] = {mt_round(l->objects), mt_round(l->bytes), mt_round(l->total_ns)};
    if (v[0] == 0 && v[1] == 0) continue;
    for (uint32_t k = 0; k < s->npcs; k++) ids[k] = *mt_pc_slot(pcs, snap->pcs[s->pcs_at + k]);
    mt__buf_reset(tmp);
    mt__pb_packed(tmp, PB_SAMPLE_LOCATION_ID, ids, s->npcs);
    mt__pb_packed(tmp, PB_SAMPLE_VALUE, (const uint64_t *)v, 3);
    mt__buf_reset(sub);
    mt__pb_uint(sub, PB_LABEL_KEY, life_key);
    mt__pb_int(sub, PB_LABEL_NUM, (int64_t)mt__life_bucket_floor(l->bucket));
    mt__pb_uint(sub, PB_LABEL_NUM_UNIT, ns_unit);
    mt__pb_bytes(tmp, PB_SAMPLE_LABEL, sub->data, sub->len);
    uint64_t freed = l->free_stack == MT_LIFE_IN_USE ? in_use : unknown;
    if (l->free_stack < snap->nstacks && name_of != NULL && name_of[l->free_stack] != 0) {
      freed = name_of[l->free_stack] - 1;
    } else if (l->free_stack < snap->nstacks) { /* the freeing stack, named: "f < g < h" */
      const mt_prof_stack *fs = &snap->stacks[l->free_stack];
      size_t len = 0;
      for (uint32_t k = 0; k < fs->npcs && k < 8; k++) { /* named frames only: the command folds them */
        const char *nm = sym->name(sym->ctx, snap->pcs[fs->pcs_at + k]);
        size_t nl = nm ? strlen(nm) : 0;
        if (nl == 0 || len + nl + 4 >= sizeof names) continue;
        if (len) memcpy(names + len, " < ", 3), len += 3;
        memcpy(names + len, nm, nl);
        len += nl;
      }
      names[len] = 0;
      if (len == 0) memcpy(names, "(unnamed)", 10);
      freed = mt_str(st, names);
      if (name_of != NULL) name_of[l->free_stack] = freed + 1;
    }
    mt__buf_reset(sub);
    mt__pb_uint(sub, PB_LABEL_KEY, freed_key);
    mt__pb_uint(sub, PB_LABEL_STR, freed);
    mt__pb_bytes(tmp, PB_SAMPLE_LABEL, sub->data, sub->len);
    if (l->free_stack != MT_LIFE_IN_USE) {
      mt__buf_reset(sub);
      mt__pb_uint(sub, PB_LABEL_KEY, thread_key);
      mt__pb_uint(sub, PB_LABEL_STR, l->other_thread ? other : same);
      mt__pb_bytes(tmp, PB_SAMPLE_LABEL, sub->data, sub->len);
    }
    mt__pb_bytes(out, PB_PROFILE_SAMPLE, tmp->data, tmp->len);
  }
  mt__buf_free(&named);
}

int mt__pprof_encode(const mt_prof_snapshot *snap, const mt_pprof_mapping *maps, size_t nmaps,
                     const mt_pprof_symbols *sym, bool window, const char *kind, const char *command,
                     mt_buf *out) {
  mt_strtab st = {0};
  mt_buf tmp = {0}, sub = {0}, locs = {0};
  mt_pcmap pcs = {0};
  mt_str(&st, "");
  /* the four of Go's heap profiles (bytes as requested), then the bytes of
   * the blocks handed out, size-class rounding included: their difference
   * is each site's internal fragmentation, and they add up to the
   * allocator's statistics */
  static const char *types[6][2] = {{"alloc_objects", "count"},    {"alloc_space", "bytes"},
                                    {"inuse_objects", "count"},    {"inuse_space", "bytes"},
                                    {"alloc_held_space", "bytes"}, {"inuse_held_space", "bytes"}};
  /* a lifetimes profile: per allocation stack, the blocks by how long they
   * lived (label "lifetime", the floor of a log-scale bucket) and who freed
   * them (label "freed_by": the freeing stack's frames, innermost first) */
  static const char *life_types[3][2] = {{"objects", "count"}, {"space", "bytes"}, {"lifetime", "nanoseconds"}};
  bool lives = snap->lives != NULL;
  if (lives)
    for (int i = 0; i < 3; i++)
      mt_value_type(out, &tmp, PB_PROFILE_SAMPLE_TYPE, mt_str(&st, life_types[i][0]), mt_str(&st, life_types[i][1]));
  else
    for (int i = 0; i < 6; i++)
      mt_value_type(out, &tmp, PB_PROFILE_SAMPLE_TYPE, mt_str(&st, types[i][0]), mt_str(&st, types[i][1]));

  /* mappings: executable file mappings, with the build ID of their object */
  for (size_t i = 0; i < nmaps; i++) {
    mt__buf_reset(&tmp);
    mt__pb_uint(&tmp, PB_MAPPING_ID, i + 1);
    mt__pb_uint(&tmp, PB_MAPPING_MEMORY_START, maps[i].start);
    mt__pb_uint(&tmp, PB_MAPPING_MEMORY_LIMIT, maps[i].limit);
    mt__pb_uint(&tmp, PB_MAPPING_FILE_OFFSET, maps[i].offset);
    mt__pb_uint(&tmp, PB_MAPPING_FILENAME, mt_str(&st, maps[i].path));
    mt__pb_uint(&tmp, PB_MAPPING_BUILD_ID, mt_str(&st, maps[i].build_id));
    mt__pb_uint(&tmp, PB_MAPPING_HAS_FUNCTIONS, 1);
    if (maps[i].has_lines) {
      mt__pb_uint(&tmp, PB_MAPPING_HAS_FILENAMES, 1);
      mt__pb_uint(&tmp, PB_MAPPING_HAS_LINE_NUMBERS, 1);
    }
    mt__pb_bytes(out, PB_PROFILE_MAPPING, tmp.data, tmp.len);
  }

  /* locations and functions: one per distinct pc, functions by name */
  size_t npcs = snap->npcs ? snap->npcs : 1, slots = 64;
  while (slots < npcs * 2) slots *= 2;
  pcs.slots = slots;
  /* fresh mappings: zero already */
  if (!mt__buf_reserve(&pcs.keys, slots * sizeof(uintptr_t)) || !mt__buf_reserve(&pcs.vals, slots * 4)) return -1;
  uint64_t next_loc = 1;
  mt_strtab fnames = {0}; /* function name -> function id */
  for (size_t i = 0; i < snap->npcs; i++) {
    uintptr_t pc = snap->pcs[i];
    uint32_t *id = mt_pc_slot(&pcs, pc);
    if (*id) continue;
    *id = (uint32_t)next_loc++;
    uint64_t mapping = 0;
    for (size_t k = 0; k < nmaps; k++)
      if (pc >= maps[k].start && pc < maps[k].limit) mapping = k + 1;
    const char *name = sym->name(sym->ctx, pc);
    const char *file = NULL;
    uint32_t line = 0;
    if (name != NULL && sym->line(sym->ctx, pc, &file, &line) != 0) file = NULL, line = 0;
    mt__buf_reset(&tmp);
    mt__pb_uint(&tmp, PB_LOCATION_ID, *id);
    mt__pb_uint(&tmp, PB_LOCATION_MAPPING_ID, mapping);
    mt__pb_uint(&tmp, PB_LOCATION_ADDRESS, pc);
    if (name != NULL) {
      size_t before = fnames.count;
      uint64_t fid = mt_str(&fnames, name) + 1;
      if (fnames.count != before) { /* a new function */
        mt__buf_reset(&sub);
        mt__pb_uint(&sub, PB_FUNCTION_ID, fid);
        mt__pb_uint(&sub, PB_FUNCTION_NAME, mt_str(&st, name));
        mt__pb_uint(&sub, PB_FUNCTION_SYSTEM_NAME, mt_str(&st, name));
        if (file != NULL) mt__pb_uint(&sub, PB_FUNCTION_FILENAME, mt_str(&st, file));
        mt__pb_bytes(&locs, PB_PROFILE_FUNCTION, sub.data, sub.len);
      }
      mt__buf_reset(&sub);
      mt__pb_uint(&sub, PB_LINE_FUNCTION_ID, fid);
      mt__pb_int(&sub, PB_LINE_LINE, (int64_t)line);
      mt__pb_bytes(&tmp, PB_LOCATION_LINE, sub.data, sub.len);
    }
    mt__pb_bytes(out, PB_PROFILE_LOCATION, tmp.data, tmp.len);
  }
  mt__buf_put(out, locs.data, locs.len); /* the functions */

  /* samples */
  uint64_t ids[MT_PROF_MAX_FRAMES];
  uint64_t thread_key = mt_str(&st, "thread"), region_key = mt_str(&st, "region");
  if (lives) mt_encode_lives(snap, sym, &st, &pcs, &tmp, &sub, out);
  for (size_t i = 0; i < snap->nstacks && !lives; i++) {
    const mt_prof_stack *s = &snap->stacks[i];
    int64_t v[6] = {mt_round(s->now.alloc_objects - (window ? s->window.alloc_objects : 0)),
                    mt_round(s->now.alloc_bytes - (window ? s->window.alloc_bytes : 0)),
                    mt_round(s->now.live_objects), mt_round(s->now.live_bytes),
                    mt_round(s->now.alloc_held - (window ? s->window.alloc_held : 0)), mt_round(s->now.live_held)};
    if (v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 0) continue;
    for (uint32_t k = 0; k < s->npcs; k++) ids[k] = *mt_pc_slot(&pcs, snap->pcs[s->pcs_at + k]);
    mt__buf_reset(&tmp);
    mt__pb_packed(&tmp, PB_SAMPLE_LOCATION_ID, ids, s->npcs);
    mt__pb_packed(&tmp, PB_SAMPLE_VALUE, (const uint64_t *)v, 6);
    if (s->tid) {
      mt__buf_reset(&sub);
      mt__pb_uint(&sub, PB_LABEL_KEY, thread_key);
      mt__pb_int(&sub, PB_LABEL_NUM, (int64_t)s->tid);
      mt__pb_bytes(&tmp, PB_SAMPLE_LABEL, sub.data, sub.len);
    }
    if (s->region[0]) {
      mt__buf_reset(&sub);
      mt__pb_uint(&sub, PB_LABEL_KEY, region_key);
      mt__pb_uint(&sub, PB_LABEL_STR, mt_str(&st, s->region));
      mt__pb_bytes(&tmp, PB_SAMPLE_LABEL, sub.data, sub.len);
    }
    mt__pb_bytes(out, PB_PROFILE_SAMPLE, tmp.data, tmp.len);
  }
  uint64_t comment = mt_str(&st, kind), command_comment = 0;
  if (command != NULL && command[0] != 0) {
    char line[1100];
    snprintf(line, sizeof line, "cmd: %s", command);
    command_comment = mt_str(&st, line);
  }
  uint64_t space = mt_str(&st, "space"), bytes = mt_str(&st, "bytes"),
           inuse = mt_str(&st, lives ? "objects" : "inuse_space");
  /* the string table, then the scalar fields */
  const uint32_t *offs = (const uint32_t *)st.offs.data;
  for (size_t i = 0; i < st.count; i++) {
    const char *x = (const char *)st.text.data + offs[i];
    mt__pb_bytes(out, PB_PROFILE_STRING_TABLE, x, strlen(x));
  }
  mt__pb_int(out, PB_PROFILE_TIME_NANOS, (int64_t)snap->time_ns);
  mt__pb_int(out, PB_PROFILE_DURATION_NANOS, (int64_t)snap->duration_ns);
  mt_value_type(out, &tmp, PB_PROFILE_PERIOD_TYPE, space, bytes);
  mt__pb_int(out, PB_PROFILE_PERIOD, (int64_t)snap->rate);
  mt__pb_key(out, PB_PROFILE_COMMENT, PB_WIRE_VARINT); /* comment: which kind of profile */
  mt__pb_varint(out, comment);
  if (command_comment != 0) {
    mt__pb_key(out, PB_PROFILE_COMMENT, PB_WIRE_VARINT); /* the command line */
    mt__pb_varint(out, command_comment);
  }
  mt__pb_int(out, PB_PROFILE_DEFAULT_SAMPLE_TYPE, (int64_t)inuse); /* default sample type */
  int failed = out->failed || st.text.failed || tmp.failed || sub.failed || locs.failed;
  mt__buf_free(&st.text), mt__buf_free(&st.offs), mt__buf_free(&st.index);
  mt__buf_free(&fnames.text), mt__buf_free(&fnames.offs), mt__buf_free(&fnames.index);
  mt__buf_free(&tmp), mt__buf_free(&sub), mt__buf_free(&locs);
  mt__buf_free(&pcs.keys), mt__buf_free(&pcs.vals);
  return failed ? -1 : 0;
}

