/* flame.c -- a self-contained interactive flame graph (HTML, CSS and script inline)
 *
 * The call tree (root at the top, callees below) is embedded as JSON; the
 * page's script draws one element per frame, zooms into a frame on click,
 * highlights frames matching the search box and shows bytes, objects and
 * percent on hover. Nothing is fetched from the network. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

typedef struct node {
  const char *name;
  double value, objects;
  struct node *child, *next, *parent;
} node;

/* Every node by (parent, name), open addressing: finding a child is O(1)
 * however many siblings it has (a hostile profile may give one frame a
 * million callees). */
typedef struct children {
  node **slot;
  size_t n, cap;
} children;

/* Names are compared by pointer: the profile's equal strings are one
 * pointer, and a location without a name gets one string of its address. */
static uint64_t child_hash(const node *parent, const char *name) {
  uint64_t h = ((uint64_t)(uintptr_t)parent ^ ((uint64_t)(uintptr_t)name << 17)) * 0x9e3779b97f4a7c15ULL;
  return h ^ (h >> 29);
}

static node *child_of(children *t, node *n, const char *name) {
  if (2 * (t->n + 1) > t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 1024;
    node **s = calloc(cap, sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < t->cap; i++)
      if (t->slot[i]) {
        size_t j = child_hash(t->slot[i]->parent, t->slot[i]->name) & (cap - 1);
        while (s[j]) j = (j + 1) & (cap - 1);
        s[j] = t->slot[i];
      }
    free(t->slot);
    t->slot = s, t->cap = cap;
  }
  size_t j = child_hash(n, name) & (t->cap - 1);
  for (; t->slot[j]; j = (j + 1) & (t->cap - 1))
    if (t->slot[j]->parent == n && t->slot[j]->name == name) return t->slot[j];
  node *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->name = name;
  c->parent = n;
  c->next = n->child;
  n->child = c;
  t->slot[j] = c;
  t->n++;
  return c;
}

/* A frame's name as a JSON string, cut at NAME_MAX bytes: the page cannot
 * show more, and a hostile profile must not turn 8 MB of input into
 * gigabytes of page through a few long names on many frames. */
#define NAME_MAX_BYTES 512
static void json_name(FILE *out, const char *s) {
  fputc('"', out);
  const char *end = s + strnlen(s, NAME_MAX_BYTES);
  for (; s < end; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
    else if (c == '<') fputs("\\u003c", out); /* never closes the script element */
    else if (c < 0x20) fprintf(out, "\\u%04x", c);
    else fputc(c, out);
  }
  if (*s) fputs("...", out);
  fputc('"', out);
}

/* The tree as nested JSON. Iterative, with a stack on the heap: a hostile
 * profile may hold a sample of a million frames, and recursion as deep as
 * the input would overflow the C stack. Returns -1 when out of memory. */
static int emit(FILE *out, const node *root) {
  size_t cap = 64, depth = 0;
  const node **stack = malloc(cap * sizeof *stack);
  if (!stack) return -1;
  const node *n = root;
  for (;;) {
    fputs("{\"n\":", out);
    json_name(out, n->name);
    fprintf(out, ",\"v\":%.0f,\"o\":%.0f", n->value, n->objects);
    if (n->child) { /* descend: the node stays open on the stack */
      fputs(",\"c\":[", out);
      if (depth == cap) {
        const node **grown = realloc(stack, 2 * cap * sizeof *stack);
        if (!grown) {
          free(stack);
          return -1;
        }
        stack = grown, cap *= 2;
      }
      stack[depth++] = n;
      n = n->child;
      continue;
    }
    fputc('}', out);
    /* close finished parents until a node has a next sibling */
    while (n->next == NULL && depth > 0) {
      n = stack[--depth];
      fputs("]}", out);
    }
    if (depth == 0 && (n == root || n->next == NULL)) break;
    fputc(',', out);
    n = n->next;
  }
  free(stack);
  return 0;
}

/* Free the nodes below n without recursion: a child's children are spliced
 * into the sibling list before it is freed. */
static void free_tree(node *n) {
  node *list = n->child;
  while (list) {
    node *c = list;
    if (c->child) {
      node *last = c->child;
      while (last->next) last = last->next;
      last->next = c->next;
      list = c->child;
    } else {
      list = c->next;
    }
    free(c);
  }
}

static const char *page_head =
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>memtally flame graph</title><style>\n"
    "body{font:12px sans-serif;margin:8px;background:#fff}#bar{margin-bottom:6px}#chart{position:relative;width:100%}\n"
    ".frame{position:absolute;height:17px;overflow:hidden;white-space:nowrap;box-sizing:border-box;border:1px solid #fff;"
    "padding-left:2px;line-height:15px;cursor:pointer;border-radius:2px}\n"
    ".frame.match{background:#e040fb!important}#tip{position:fixed;display:none;background:#222;color:#fff;padding:4px 6px;"
    "border-radius:3px;pointer-events:none;z-index:9}\n"
    "</style></head><body><div id='bar'><b>memtally</b> <span id='title'></span> &nbsp; <input id='search' "
    "placeholder='search' size='30'> <button id='reset'>reset zoom</button> <span id='found'></span></div>\n"
    "<div id='chart'></div><div id='tip'></div><script>\n";

static const char *page_script =
    "var unit=DATA.unit,root=DATA.tree,focus=root,H=18;\n"
    "function fmt(v){if(unit!='bytes')return v>=1e6?(v/1e6).toFixed(1)+' M':v>=1e4?(v/1e3).toFixed(1)+' k':''+v;"
    "var u=['B','KiB','MiB','GiB','TiB'],i=0;while(v>=1024&&i<4){v/=1024;i++}return (i?v.toFixed(1):v)+' '+u[i]}\n"
    "function color(n){var h=0;for(var i=0;i<n.length;i++)h=(h*31+n.charCodeAt(i))>>>0;"
    "return 'hsl('+(10+h%40)+','+(60+h%30)+'%,'+(55+h%15)+'%)'}\n"
    "function parents(t,target,path){if(t===target)return path.concat([t]);var c=t.c||[];"
    "for(var i=0;i<c.length;i++){var r=parents(c[i],target,path.concat([t]));if(r)return r}return null}\n"
    "function draw(){var chart=document.getElementById('chart');chart.innerHTML='';var W=chart.clientWidth||1000,"
    "depth=0,q=document.getElementById('search').value,matched=0;var path=parents(root,focus,[])||[root];\n"
    "function box(n,d,x,w){var e=document.createElement('div');e.className='frame';e.style.left=x+'px';"
    "e.style.top=(d*H)+'px';e.style.width=Math.max(w,1)+'px';e.style.background=color(n.n);"
    "e.textContent=w>30?n.n:'';e.dataset.name=n.n;if(q&&n.n.indexOf(q)>=0){e.classList.add('match');}"
    "e.onclick=function(){focus=n;draw()};e.onmousemove=function(ev){var t=document.getElementById('tip');"
    "t.style.display='block';t.style.left=(ev.clientX+12)+'px';t.style.top=(ev.clientY+12)+'px';"
    "t.textContent=n.n+' \\u2014 '+fmt(n.v)+' ('+(100*n.v/root.v).toFixed(2)+'%), '+n.o+' objects'};"
    "e.onmouseout=function(){document.getElementById('tip').style.display='none'};chart.appendChild(e);"
    "if(d+1>depth)depth=d+1}\n"
    "for(var i=0;i<path.length-1;i++)box(path[i],i,0,W);\n"
    "function walk(n,d,x,w){box(n,d,x,w);if(q&&n.n.indexOf(q)>=0)matched+=n.v;var c=(n.c||[]).slice().sort("
    "function(a,b){return b.v-a.v});var cx=x;for(var i=0;i<c.length;i++){var cw=w*c[i].v/n.v;"
    "if(cw>=0.5)walk(c[i],d+1,cx,cw);cx+=cw}}\n"
    "walk(focus,path.length-1,0,W);chart.style.height=(depth*H+20)+'px';"
    "document.getElementById('found').textContent=q?('matched '+fmt(matched)+' ('+(100*matched/root.v).toFixed(1)+'%)'):''}\n"
    "document.getElementById('title').textContent=DATA.title;document.getElementById('search').oninput=draw;"
    "document.getElementById('reset').onclick=function(){focus=root;draw()};window.onresize=draw;draw();\n"
    "</script></body></html>\n";

static int any_match(const mtt_pattern_list *l, const char *name) {
  for (int i = 0; i < l->n; i++)
    if (regexec(&l->re[i], name, 0, NULL, 0) == 0) return 1;
  return 0;
}

/* Whether sample S passes --focus and --ignore, its frames named as the graph names them. */
static int flame_wanted(const mtt_profile *p, const mtt_options *o, const mtt_sample *S) {
  if (o->focus.n == 0 && o->ignore.n == 0) return 1;
  int focus = o->focus.n == 0, ignore = 0;
  char buf[256];
  for (size_t k = 0; k < S->nlocs; k++) {
    const mtt_location *l = &p->locations[S->locs[k]];
    size_t named = 0;
    for (size_t j = 0; j < l->nlines; j++) {
      uint64_t fi = l->lines[j].function;
      if (fi >= p->nfunctions || p->functions[fi].name[0] == 0) continue;
      named++;
      focus |= any_match(&o->focus, p->functions[fi].name);
      ignore |= any_match(&o->ignore, p->functions[fi].name);
    }
    if (!named) {
      mtt_address_name(p, l, buf, sizeof buf);
      focus |= any_match(&o->focus, buf);
      ignore |= any_match(&o->ignore, buf);
    }
  }
  return focus && !ignore;
}

int mtt_flame(const mtt_profile *p, const mtt_options *o, FILE *out, char *err, size_t errlen) {
  int vi, oi;
  if (mtt_pick_type(p, o, &vi, &oi, err, errlen) != 0) return 2;
  node root = {"all", 0, 0, NULL, NULL, NULL};
  children index = {NULL, 0, 0};
  char buf[256];
  /* a location without a function name is drawn as its address: one
   * string per location, made the first time it is met */
  char **addr_names = calloc(p->nlocations ? p->nlocations : 1, sizeof *addr_names);
  int rc = addr_names ? 0 : -1;
  for (size_t s = 0; s < p->nsamples && rc == 0; s++) {
    const mtt_sample *S = &p->samples[s];
    double v = (double)mtt_value(S, vi), ob = oi >= 0 ? (double)mtt_value(S, oi) : 0;
    if (v == 0 || !flame_wanted(p, o, S)) continue;
    node *n = &root;
    n->value += v;
    n->objects += ob;
    for (size_t k = S->nlocs; k-- > 0 && rc == 0;) { /* root first; a location's inlined frames outermost first */
      const mtt_location *l = &p->locations[S->locs[k]];
      size_t named = 0;
      for (size_t j = l->nlines; j-- > 0;) {
        uint64_t fi = l->lines[j].function;
        if (fi >= p->nfunctions || p->functions[fi].name[0] == 0) continue;
        named++;
        if (o->hide.n && any_match(&o->hide, p->functions[fi].name)) continue;
        n = child_of(&index, n, p->functions[fi].name);
        if (!n) {
          rc = -1;
          break;
        }
        n->value += v;
        n->objects += ob;
      }
      if (named || rc != 0) continue;
      char **a = &addr_names[S->locs[k]];
      if (*a == NULL) {
        mtt_address_name(p, l, buf, sizeof buf);
        *a = strdup(buf);
      }
      if (*a && o->hide.n && any_match(&o->hide, *a)) continue;
      if (*a) n = child_of(&index, n, *a);
      if (!*a || !n) {
        rc = -1;
        break;
      }
      n->value += v;
      n->objects += ob;
    }
  }
  fputs(page_head, out);
  fputs("var DATA={\"unit\":", out);
  json_name(out, p->type_units[vi]);
  fputs(",\"title\":", out);
  json_name(out, p->type_names[vi]);
  fputs(",\"tree\":", out);
  if (rc == 0) rc = emit(out, &root);
  fputs("};\n", out);
  fputs(page_script, out);
  free_tree(&root);
  free(index.slot);
  for (size_t i = 0; addr_names && i < p->nlocations; i++) free(addr_names[i]);
  free(addr_names);
  if (rc != 0) {
    snprintf(err, errlen, "out of memory");
    return 2;
  }
  return 0;
}
