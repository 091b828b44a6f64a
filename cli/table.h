/*
 * table.h - aligned text tables for people: a header row, then rows of
 * cells; columns as wide as their widest cell (counted in characters, not
 * bytes), numbers right-aligned, colour applied after alignment so escape
 * sequences never skew the columns.
 */
#ifndef SPOOL_CLI_TABLE_H
#define SPOOL_CLI_TABLE_H

#include <stdio.h>

#include "fmt.h"

#define TABLE_MAX_COLS 12

typedef struct table {
    int ncols;
    const char *head[TABLE_MAX_COLS];
    int right[TABLE_MAX_COLS];      /* 1: right-aligned */
    char **cells;                   /* nrows * ncols, owned */
    fmt_color *colors;              /* per cell, FMT_RESET: none */
    int nrows, cap;
} table;

/* Columns from a comma-separated spec; a leading '>' right-aligns a
 * column ("QUEUE,>READY,>DEAD"). Names point into the spec (keep it). */
void table_init(table *t, char *spec);
/* Adds a row of ncols strings (copied). */
void table_add(table *t, const char *const *cells);
/* Colours one cell of the last row added. */
void table_color_last(table *t, int col, fmt_color c);
/* Prints and frees. */
void table_print(table *t, FILE *f);

#endif
