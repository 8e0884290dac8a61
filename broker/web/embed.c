/*
 * embed: writes a C file holding the given files as web_assets
 * (assets.h), each served at "/" and its base name. Run at build time:
 *   embed OUT.c FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
type_of(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (dot != NULL && strcmp(dot, ".html") == 0)
		return "text/html; charset=utf-8";
	if (dot != NULL && strcmp(dot, ".js") == 0)
		return "text/javascript; charset=utf-8";
	if (dot != NULL && strcmp(dot, ".css") == 0)
		return "text/css; charset=utf-8";
	if (dot != NULL && strcmp(dot, ".svg") == 0)
		return "image/svg+xml";
	return "application/octet-stream";
}

int
main(int argc, char **argv)
{
	FILE *out;

	if (argc < 2) {
		fprintf(stderr, "usage: embed OUT.c FILE...\n");
		return 2;
	}
	out = fopen(argv[1], "w");
	if (out == NULL) {
		perror(argv[1]);
		return 1;
	}
	fprintf(out, "/* Made by broker/web/embed.c: do not edit. */\n"
		     "#include \"web/assets.h\"\n\n");
	for (int i = 2; i < argc; i++) {
		FILE *in = fopen(argv[i], "rb");
		int ch;
		size_t n = 0;

		if (in == NULL) {
			perror(argv[i]);
			return 1;
		}
		fprintf(out, "static const unsigned char asset%d[] = {", i);
		while ((ch = fgetc(in)) != EOF)
			fprintf(out, "%s0x%02x,", n++ % 16 ? "" : "\n\t", ch);
		fprintf(out, "\n\t0x00\n};\n\n");
		if (ferror(in)) {
			perror(argv[i]);
			return 1;
		}
		fclose(in);
	}
	fprintf(out, "const struct web_asset web_assets[] = {\n");
	for (int i = 2; i < argc; i++) {
		const char *base = strrchr(argv[i], '/');

		base = base ? base + 1 : argv[i];
		fprintf(out,
			"\t{ \"/%s\", \"%s\", asset%d, sizeof(asset%d) - 1 },\n",
			base, type_of(base), i, i);
	}
	fprintf(out, "};\n\nconst size_t web_nassets = %d;\n", argc - 2);
	if (fclose(out) != 0) {
		perror(argv[1]);
		return 1;
	}
	return 0;
}
