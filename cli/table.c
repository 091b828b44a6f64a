/*
 * table.c - see table.h. Cells are copied on add and freed on print; a
 * table that fails to allocate aborts (the CLI has nothing to save).
 */
#include "table.h"

#include <stdlib.h>
#include <string.h>

void table_init(table *t, char *spec)
{
    memset(t, 0, sizeof *t);
    for (char *save = NULL, *tok = strtok_r(spec, ",", &save); tok && t->ncols < TABLE_MAX_COLS;
         tok = strtok_r(NULL, ",", &save)) {
        t->right[t->ncols] = tok[0] == '>';
        t->head[t->ncols++] = tok + (tok[0] == '>');
    }
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs("spool: out of memory\n", stderr);
        abort();
    }
    return p;
}

void table_add(table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->cells = xrealloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof *t->cells);
        t->colors = xrealloc(t->colors, (size_t)t->cap * (size_t)t->ncols * sizeof *t->colors);
    }
    for (int i = 0; i < t->ncols; i++) {
        size_t k = (size_t)t->nrows * (size_t)t->ncols + (size_t)i;
        t->cells[k] = strdup(cells[i] ? cells[i] : "");
        if (!t->cells[k])
            abort();
        t->colors[k] = FMT_RESET;
    }
    t->nrows++;
}

void table_color_last(table *t, int col, fmt_color c)
{
    if (t->nrows > 0 && col >= 0 && col < t->ncols)
        t->colors[(size_t)(t->nrows - 1) * (size_t)t->ncols + (size_t)col] = c;
}

/* Display width: UTF-8 characters. */
static int width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void print_cell(FILE *f, const char *s, int w, int right, bool last, fmt_color c)
{
    int pad = w - width(s);
    if (right)
        fprintf(f, "%*s", pad, "");
    fprintf(f, "%s%s%s", c != FMT_RESET ? fmt_c(c) : "", s, c != FMT_RESET ? fmt_c(FMT_RESET) : "");
    if (!right && !last)
        fprintf(f, "%*s", pad, "");
    if (!last)
        fputs("  ", f);
}

void table_print(table *t, FILE *f)
{
    int w[TABLE_MAX_COLS];
    for (int i = 0; i < t->ncols; i++) {
        w[i] = width(t->head[i]);
        for (int r = 0; r < t->nrows; r++) {
            int cw = width(t->cells[(size_t)r * (size_t)t->ncols + (size_t)i]);
            w[i] = cw > w[i] ? cw : w[i];
        }
    }
    for (int i = 0; i < t->ncols; i++)
        print_cell(f, t->head[i], w[i], t->right[i], i == t->ncols - 1, FMT_BOLD);
    fputc('\n', f);
    for (int r = 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols; i++) {
            size_t k = (size_t)r * (size_t)t->ncols + (size_t)i;
            print_cell(f, t->cells[k], w[i], t->right[i], i == t->ncols - 1, t->colors[k]);
            free(t->cells[k]);
        }
        fputc('\n', f);
    }
    free(t->cells);
    free(t->colors);
    t->cells = NULL;
    t->colors = NULL;
    t->nrows = t->cap = 0;
}
