/*
 * replay: the main() of a fuzz target built without libFuzzer. It runs
 * LLVMFuzzerTestOneInput on every regular file of a corpus directory, so
 * the seeds and every input that once failed run in the default suite.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole file into an exact-size buffer. */
static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (fp == NULL)
		return NULL;
	if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0)
		goto fail;
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		goto fail;
	fclose(fp);
	*len = (size_t)n;
	return buf;
fail:
	free(buf);
	fclose(fp);
	return NULL;
}

/* Replays every regular file of the corpus directory argv[1]. */
int
main(int argc, char **argv)
{
	DIR *dir;
	struct dirent *de;
	int replayed = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	dir = opendir(argv[1]);
	if (dir == NULL) {
		perror(argv[1]);
		return 1;
	}
	while ((de = readdir(dir)) != NULL) {
		char path[4096];
		struct stat st;
		uint8_t *buf;
		size_t len;

		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name) >=
		    (int)sizeof path)
			continue;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		buf = read_file(path, &len);
		if (buf == NULL) {
			perror(path);
			closedir(dir);
			return 1;
		}
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
		replayed++;
	}
	closedir(dir);
	printf("%s: replayed %d inputs from %s\n", argv[0], replayed, argv[1]);
	/* An empty corpus means a wrong path, not a pass. */
	return replayed > 0 ? 0 : 1;
}
