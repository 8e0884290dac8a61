/*
 * wire: see wire.h.
 */
#define _GNU_SOURCE
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Fills w->hs / hp / names from the raw header block of v. */
static int
wire_headers(struct wire_msg *w, const struct store_msg_view *v)
{
	struct store_header h;
	uint32_t pos = 0, nh = 0;
	char *np;

	while (store_headers_next(v->headers, v->headers_len, &pos, &h) == 1)
		nh++;
	if (nh == 0)
		return 0;
	w->hs = calloc(nh, sizeof(*w->hs));
	w->hp = calloc(nh, sizeof(*w->hp));
	w->names = malloc(v->headers_len + nh);
	if (w->hs == NULL || w->hp == NULL || w->names == NULL)
		return -ENOMEM;
	np = w->names;
	pos = 0;
	for (uint32_t i = 0; i < nh; i++) {
		(void)store_headers_next(v->headers, v->headers_len, &pos, &h);
		ringmq__header__init(&w->hs[i]);
		memcpy(np, h.name, h.name_len);
		np[h.name_len] = '\0';
		w->hs[i].name = np;
		np += h.name_len + 1;
		w->hs[i].value.data = (uint8_t *)h.value;
		w->hs[i].value.len = h.value_len;
		w->hp[i] = &w->hs[i];
	}
	w->m.n_headers = nh;
	w->m.headers = w->hp;
	return 0;
}

int
wire_msg_init(struct wire_msg *w, const struct store_msg_view *v)
{
	memset(w, 0, sizeof(*w));
	ringmq__message__init(&w->m);
	if (wire_headers(w, v) < 0)
		return -ENOMEM;
	if (v->dedup_len > 0) {
		w->dedup = strndup(v->dedup_id, v->dedup_len);
		if (w->dedup == NULL)
			return -ENOMEM;
		w->m.dedup_id = w->dedup;
	}
	w->m.payload.data = (uint8_t *)v->payload;
	w->m.payload.len = v->payload_len;
	w->m.has_key = v->key_len > 0;
	w->m.key.data = (uint8_t *)v->key;
	w->m.key.len = v->key_len;
	if (v->deliver_at_ms) {
		w->m.has_deliver_at_ms = 1;
		w->m.deliver_at_ms = v->deliver_at_ms;
	}
	return 0;
}

void
wire_msg_fini(struct wire_msg *w)
{
	free(w->hs);
	free(w->hp);
	free(w->names);
	free(w->dedup);
	memset(w, 0, sizeof(*w));
}
