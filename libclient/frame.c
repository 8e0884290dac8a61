/*
 * frame.c: decoding a frame from the broker into one allocation.
 *
 * protobuf-c's default allocator costs one malloc per message, string and
 * bytes field, and freeing walks the whole tree again: for a Delivery that
 * was half of the library's instructions per message. Here a frame is
 * unpacked into an arena of chunks sized from the frame's length (one
 * chunk nearly always), and freed by freeing the chunks. protobuf-c
 * allocates the top-level message first, so the frame sits at the start of
 * its first chunk and the chunk is found again from the frame's address.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>

#include "internal.h"

struct chunk {
	struct chunk *next; /* owned: later chunks (first chunk only) */
	struct chunk *cur;  /* borrowed: chunk being filled (first only) */
	size_t cap;	    /* bytes of data */
	size_t used;
	alignas(max_align_t) unsigned char data[];
};

#define ALIGN_BYTES	  alignof(max_align_t)
#define FIRST_SLACK_BYTES 512u

static struct chunk *
chunk_new(size_t cap)
{
	struct chunk *ch = malloc(offsetof(struct chunk, data) + cap);

	if (ch == NULL)
		return NULL;
	ch->next = NULL;
	ch->cur = ch;
	ch->cap = cap;
	ch->used = 0;
	return ch;
}

static void *
arena_alloc(void *data, size_t size)
{
	struct chunk *head = data, *ch = head->cur;
	size_t need = (size + ALIGN_BYTES - 1) & ~(size_t)(ALIGN_BYTES - 1);
	void *p;

	if (need > ch->cap - ch->used) {
		size_t cap = 2 * ch->cap;

		if (cap < need)
			cap = need;
		ch = chunk_new(cap);
		if (ch == NULL)
			return NULL;
		ch->next = head->next;
		head->next = ch;
		head->cur = ch;
	}
	p = ch->data + ch->used;
	ch->used += need;
	return p;
}

/* Memory goes back with the whole frame. */
static void
arena_free(void *data, void *p)
{
	(void)data;
	(void)p;
}

static void
chunks_free(struct chunk *head)
{
	struct chunk *ch = head->next;

	while (ch != NULL) {
		struct chunk *next = ch->next;

		free(ch);
		ch = next;
	}
	free(head);
}

static struct chunk *
chunk_of(const Ringmq__Frame *f)
{
	return (struct chunk *)(void *)((unsigned char *)(uintptr_t)f -
					offsetof(struct chunk, data));
}

Ringmq__Frame *
frame_unpack(const uint8_t *data, size_t len)
{
	/* Bytes fields are copied once; the structures around them take a
	 * few hundred bytes, or a few times the wire size for lists. */
	struct chunk *head = chunk_new(len + len / 2 + FIRST_SLACK_BYTES);
	ProtobufCAllocator a = { arena_alloc, arena_free, NULL };
	Ringmq__Frame *f;

	if (head == NULL)
		return NULL;
	a.allocator_data = head;
	f = ringmq__frame__unpack(&a, len, data);
	if (f == NULL || (void *)f != (void *)head->data) {
		chunks_free(head);
		return NULL;
	}
	return f;
}

void *
frame_alloc(Ringmq__Frame *f, size_t size)
{
	return arena_alloc(chunk_of(f), size);
}

void
frame_free(Ringmq__Frame *f)
{
	if (f != NULL)
		chunks_free(chunk_of(f));
}
