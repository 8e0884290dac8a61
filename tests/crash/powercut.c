/*
 * powercut_image(): the file a power cut could leave, from the state the
 * shim kept (powercut.h).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "powercut.h"
#include "splitmix64.h"

static const uint8_t zero_page[POWERCUT_PAGE_BYTES];

/* Reads the whole of path; *len gets its size. NULL on failure. */
static uint8_t *
read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) != 0)
		goto fail;
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		goto fail;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
fail:
	fprintf(stderr, "powercut: read %s: %s\n", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static int
write_at(int fd, const uint8_t *data, uint64_t len, uint64_t off)
{
	while (len > 0) {
		size_t chunk =
			data ? len
			     : (len < sizeof(zero_page) ? (size_t)len
							: sizeof(zero_page));
		ssize_t n =
			pwrite(fd, data ? data : zero_page, chunk, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (data)
			data += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Applies a record's bytes, or only the pages the flavour keeps. */
static int
apply(int fd, const struct powercut_record *r, const uint8_t *data,
      int is_whole, enum powercut_flavour flavour, uint64_t *rng,
      struct powercut_stats *st)
{
	uint64_t off = r->off, end = r->off + r->len;

	if (is_whole)
		return write_at(fd, data, r->len, r->off);
	while (off < end) {
		uint64_t page_end =
			(off / POWERCUT_PAGE_BYTES + 1) * POWERCUT_PAGE_BYTES;
		uint64_t n = (page_end < end ? page_end : end) - off;
		int keep = flavour == POWERCUT_KEEP_ALL ||
			   (flavour == POWERCUT_KEEP_SOME &&
			    (splitmix64(rng) & 1));

		if (keep) {
			st->pages_kept++;
			if (write_at(fd, data ? data + (off - r->off) : NULL, n,
				     off) < 0)
				return -1;
		} else {
			st->pages_dropped++;
		}
		off += n;
	}
	return 0;
}

/* Writes to path the image of one watched file, from its durable image
 * and its log; adds to *st. */
static int
image_file(const char *durable, const char *logp, const char *path,
	   enum powercut_flavour flavour, uint64_t *rng,
	   struct powercut_stats *st)
{
	uint8_t *img = NULL, *log = NULL;
	size_t img_len = 0, log_len = 0, pos, last_sync = 0;
	int is_synced = 0, fd = -1, rc = -1;

	img = read_file(durable, &img_len);
	log = read_file(logp, &log_len);
	if (img == NULL || log == NULL)
		goto out;

	/* Where the records end (a record cut by the kill does not count)
	 * and where the last SYNC mark is. */
	for (pos = 0; pos + sizeof(struct powercut_record) <= log_len;) {
		struct powercut_record r;
		size_t body;

		memcpy(&r, log + pos, sizeof(r));
		if (r.magic != POWERCUT_MAGIC) {
			fprintf(stderr, "powercut: %s: bad record at %zu\n",
				logp, pos);
			goto out;
		}
		body = (r.kind & ~POWERCUT_DURABLE) == POWERCUT_WRITE
			       ? (size_t)r.len
			       : 0;
		if (pos + sizeof(r) + body > log_len)
			break;
		pos += sizeof(r) + body;
		if (r.kind == POWERCUT_SYNC) {
			last_sync = pos;
			is_synced = 1;
		}
	}
	st->is_torn += pos != log_len;
	log_len = pos;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0 || write_at(fd, img, img_len, 0) < 0)
		goto io_fail;
	for (pos = 0; pos < log_len;) {
		struct powercut_record r;
		const uint8_t *data;
		unsigned kind;

		memcpy(&r, log + pos, sizeof(r));
		pos += sizeof(r);
		kind = r.kind & ~POWERCUT_DURABLE;
		data = kind == POWERCUT_WRITE ? log + pos : NULL;
		if (kind == POWERCUT_WRITE)
			pos += (size_t)r.len;
		if (kind == POWERCUT_SYNC) {
			if (ftruncate(fd, (off_t)r.off) != 0)
				goto io_fail;
			continue;
		}
		if (!(is_synced && pos <= last_sync) &&
		    (r.kind & POWERCUT_DURABLE))
			st->durable_writes++;
		if (apply(fd, &r, data,
			  (is_synced && pos <= last_sync) ||
				  (r.kind & POWERCUT_DURABLE),
			  flavour, rng, st) < 0)
			goto io_fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		goto io_fail;
	}
	fd = -1;
	rc = 0;
	goto out;
io_fail:
	fprintf(stderr, "powercut: write %s: %s\n", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(img);
	free(log);
	return rc;
}

int
powercut_image(const char *dir, const char *path, enum powercut_flavour flavour,
	       uint64_t *rng, struct powercut_stats *st)
{
	char durable[4096], logp[4096];

	memset(st, 0, sizeof(*st));
	snprintf(durable, sizeof(durable), "%s/durable", dir);
	snprintf(logp, sizeof(logp), "%s/log", dir);
	return image_file(durable, logp, path, flavour, rng, st);
}

int
powercut_image_dir(const char *dir, const char *watch_dir,
		   enum powercut_flavour flavour, uint64_t *rng,
		   struct powercut_stats *st)
{
	DIR *d = opendir(watch_dir);
	struct dirent *e;
	int rc = 0;

	if (d == NULL) /* never made: nothing to cut */
		return errno == ENOENT ? 0 : -1;
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char path[4096], durable[4096], logp[4096];
		struct stat fst, dst;

		snprintf(path, sizeof(path), "%s/%s", watch_dir, e->d_name);
		if (stat(path, &fst) != 0 || !S_ISREG(fst.st_mode))
			continue;
		snprintf(durable, sizeof(durable), "%s/file-%llu.durable", dir,
			 (unsigned long long)fst.st_ino);
		snprintf(logp, sizeof(logp), "%s/file-%llu.log", dir,
			 (unsigned long long)fst.st_ino);
		if (stat(durable, &dst) != 0)
			continue; /* not opened in the run that was cut */
		rc = image_file(durable, logp, path, flavour, rng, st);
	}
	closedir(d);
	/* The next run starts its states afresh: an inode number a later
	 * file reuses must not inherit these. */
	d = opendir(dir);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		char path[4096];

		if (strncmp(e->d_name, "file-", 5) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		(void)unlink(path);
	}
	closedir(d);
	return rc;
}
