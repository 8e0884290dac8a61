/*
 * tmpdir: a temporary data directory for the unit tests that open a real
 * store; removed with the files LMDB and the journal left in it.
 */
#ifndef RINGMQ_TEST_TMPDIR_H
#define RINGMQ_TEST_TMPDIR_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static inline void
tmpdir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[1024];

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
					     e->d_name) < sizeof(path));
		if (e->d_type == DT_DIR)
			tmpdir_remove(path);
		else
			assert_int_equal(unlink(path), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(dir), 0);
}

#endif
