/*
 * opt.h: long flags read from a program's own table, for ringmq and
 * ringmq-bench. getopt_long walks argv; opt_next turns off what it would
 * add to the syntax the programs have always accepted:
 *
 *  - abbreviations: getopt_long takes any unique prefix of a name
 *    ("--jso"); opt_next compares the whole name and reports the word as
 *    unknown otherwise;
 *  - permutation: flags and positionals come back in argv's order and
 *    POSIXLY_CORRECT changes nothing ("-" at the head of the optstring);
 *  - "--name=VALUE": only where the program allows it (is_eq_ok), else
 *    the word is unknown, like any other misspelling;
 *  - short flags: "-h" (the row named "help") is the only one, and only as
 *    a word of its own ("-hh" is unknown, not two helps).
 *
 * A value is the next word whatever it looks like ("--server --json" gives
 * --server the value "--json"); "--" ends the flags (OPT_DASHES) and every
 * word after it is positional; "-" alone is positional.
 *
 * getopt_long keeps its state in globals: one parse at a time per
 * process.
 */
#ifndef RINGMQ_OPT_H
#define RINGMQ_OPT_H

#include <getopt.h>
#include <stddef.h>

/* What opt_store does with a flag's value. */
enum opt_store {
	OPT_STORE_NONE,	  /* nothing: the program reads the value itself */
	OPT_STORE_STRING, /* the value, into a const char * member */
	OPT_STORE_TRUE,	  /* 1, into an int member */
};

/*
 * The part of a flag the parser reads. A program's table rows each hold
 * one (the same member of every row); the rest of a row is the program's
 * (its handler, its limits). A flag that only sets a member of the
 * program's struct says which, and opt_store sets it.
 */
struct opt_def {
	const char *name; /* without "--"; static */
	int has_value;
	enum opt_store store;
	size_t field; /* OPT_STORE_*: offsetof the member it sets */
};

enum opt_kind {
	OPT_END,     /* no more words */
	OPT_FLAG,    /* row p->row, value p->value (NULL without one) */
	OPT_ARG,     /* a positional: p->value */
	OPT_DASHES,  /* "--" at argv[p->at]: every word after it is OPT_ARG */
	OPT_UNKNOWN, /* argv[p->at] names no row */
	OPT_NEEDS_VALUE, /* row p->row is the last word, without its value */
	OPT_NO_VALUE,	 /* row p->row takes no value, but "=VALUE" came */
};

struct opt_parser {
	int argc;
	char **argv;	  /* borrowed */
	const char *rows; /* borrowed: the first row's struct opt_def */
	size_t nrows;
	size_t row_size; /* from one row's struct opt_def to the next's */
	int is_eq_ok;	 /* "--name=VALUE" accepted */
	struct option *longopts; /* owned: one per row, then zeros */
	int is_ended;		 /* "--" passed: the rest is positional */
	int next;		 /* with is_ended: the next word */

	/* The last result of opt_next. */
	int at;		   /* index in argv of the word it came from */
	size_t row;	   /* OPT_FLAG, OPT_NEEDS_VALUE, OPT_NO_VALUE */
	const char *value; /* borrowed from argv */
};

/*
 * Prepares a parse of argv[1..argc-1].
 * @param[out] p      the parser; opt_fini releases it.
 * @param[in]  rows   the struct opt_def of the table's first row
 *                    (borrowed: it must outlive p).
 * @param      nrows  rows in the table.
 * @param      row_size  sizeof one row of the table.
 * @param      is_eq_ok  1: "--name=VALUE" gives a flag its value.
 * @return 0, or -1 out of memory.
 */
int opt_init(struct opt_parser *p, int argc, char **argv,
	     const struct opt_def *rows, size_t nrows, size_t row_size,
	     int is_eq_ok);

/*
 * The next word of argv, as a flag, a positional or an error; the result
 * is in p->row, p->value and p->at. After an error the parse cannot go on.
 */
enum opt_kind opt_next(struct opt_parser *p);

/*
 * Sets the member d names in the program's struct at base: value (borrowed
 * from argv) or 1, as d->store says; nothing for OPT_STORE_NONE.
 */
void opt_store(const struct opt_def *d, void *base, const char *value);

/* Releases what opt_init allocated; p itself is the caller's. */
void opt_fini(struct opt_parser *p);

#endif
