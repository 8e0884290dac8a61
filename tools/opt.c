/*
 * opt.c: the flag parser of opt.h. getopt_long finds each word's kind and
 * value; the name is then looked up again, whole, so what a word means
 * never depends on getopt_long's prefix matching.
 */
#include "opt.h"

#include <stdlib.h>
#include <string.h>

/*
 * "-": every word comes back in order, positionals as 1 (glibc's
 * RETURN_IN_ORDER, which also ignores POSIXLY_CORRECT); ":": a missing
 * value is ':', not '?', and getopt_long prints nothing; "h": -h.
 */
#define OPTSTRING "-:h"

static const struct opt_def *
row_at(const struct opt_parser *p, size_t i)
{
	return (const struct opt_def *)(const void *)(p->rows +
						      i * p->row_size);
}

/* The row named exactly by the len bytes at name; 0 or -1. */
static int
row_find(const struct opt_parser *p, const char *name, size_t len, size_t *rowp)
{
	for (size_t i = 0; i < p->nrows; i++) {
		const char *n = row_at(p, i)->name;

		if (strlen(n) == len && strncmp(n, name, len) == 0) {
			*rowp = i;
			return 0;
		}
	}
	return -1;
}

int
opt_init(struct opt_parser *p, int argc, char **argv,
	 const struct opt_def *rows, size_t nrows, size_t row_size,
	 int is_eq_ok)
{
	memset(p, 0, sizeof(*p));
	p->argc = argc;
	p->argv = argv;
	p->rows = (const char *)rows;
	p->nrows = nrows;
	p->row_size = row_size;
	p->is_eq_ok = is_eq_ok;
	p->longopts = calloc(nrows + 1, sizeof(*p->longopts));
	if (p->longopts == NULL)
		return -1;
	for (size_t i = 0; i < nrows; i++) {
		p->longopts[i].name = row_at(p, i)->name;
		p->longopts[i].has_arg = row_at(p, i)->has_value
						 ? required_argument
						 : no_argument;
	}
	/* 0: getopt_long starts afresh and reads OPTSTRING's "-" again. */
	optind = 0;
	opterr = 0;
	return 0;
}

void
opt_store(const struct opt_def *d, void *base, const char *value)
{
	void *member = (char *)base + d->field;

	if (d->store == OPT_STORE_STRING)
		*(const char **)member = value;
	else if (d->store == OPT_STORE_TRUE)
		*(int *)member = 1;
}

void
opt_fini(struct opt_parser *p)
{
	free(p->longopts);
	p->longopts = NULL;
}

/* The row a flag word names exactly, as getopt_long returned c for it. */
static enum opt_kind
flag_word(struct opt_parser *p, int c)
{
	const char *word = p->argv[p->at];
	const char *name = word + 2;
	int rc;

	if (word[1] != '-')
		rc = strcmp(word, "-h") == 0 ? row_find(p, "help", 4, &p->row)
					     : -1;
	else
		rc = row_find(p, name,
			      p->is_eq_ok ? strcspn(name, "=") : strlen(name),
			      &p->row);
	if (rc < 0)
		return OPT_UNKNOWN;
	/* Named exactly, so getopt_long found this row too: its only
	 * complaints left are a missing value and "=VALUE" on a flag
	 * without one. */
	if (c == ':')
		return OPT_NEEDS_VALUE;
	if (c == '?')
		return OPT_NO_VALUE;
	p->value = optarg;
	return OPT_FLAG;
}

enum opt_kind
opt_next(struct opt_parser *p)
{
	int c;

	p->value = NULL;
	if (p->is_ended) {
		if (p->next >= p->argc)
			return OPT_END;
		p->at = p->next;
		p->value = p->argv[p->next++];
		return OPT_ARG;
	}
	p->at = optind > 0 ? optind : 1;
	c = getopt_long(p->argc, p->argv, OPTSTRING, p->longopts, NULL);
	if (c == -1 && p->at < p->argc) {
		/* In order, getopt_long stops early only at "--"; optind is
		 * then the word after it. */
		p->is_ended = 1;
		p->next = optind;
		return OPT_DASHES;
	}
	if (c == -1)
		return OPT_END;
	if (c == 1) {
		p->value = optarg;
		return OPT_ARG;
	}
	return flag_word(p, c);
}
