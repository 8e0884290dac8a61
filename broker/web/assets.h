/*
 * assets: the dashboard's files (index.html, dashboard.js, dashboard.css
 * in this folder), compiled into the broker by embed.c at build time, so
 * the page needs nothing outside the binary.
 */
#ifndef RINGMQ_WEB_ASSETS_H
#define RINGMQ_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path; /* "/index.html" */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_nassets;

#endif
