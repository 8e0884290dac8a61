/*
 * Unit test tying the hand-coded field numbers (proto/fields.h, used by
 * broker/req/wire.c and libclient/frame.c) to ringmq.proto, through
 * protobuf-c's descriptors of the generated code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fields.h"
#include "ringmq.pb-c.h"

static void
expect_field(const ProtobufCMessageDescriptor *d, const char *name,
	     unsigned number)
{
	const ProtobufCFieldDescriptor *f =
		protobuf_c_message_descriptor_get_field_by_name(d, name);

	if (f == NULL)
		fail_msg("%s has no field %s", d->name, name);
	if (f->id != number)
		fail_msg("%s.%s is field %u in ringmq.proto, %u in fields.h",
			 d->name, name, f->id, number);
}

static void
test_fields_match_the_proto(void **state)
{
	(void)state;
	expect_field(&ringmq__frame__descriptor, "request_id",
		     FIELD_FRAME_REQUEST_ID);
	expect_field(&ringmq__frame__descriptor, "publish_ok",
		     FIELD_FRAME_PUBLISH_OK);
	expect_field(&ringmq__frame__descriptor, "delivery",
		     FIELD_FRAME_DELIVERY);
	expect_field(&ringmq__frame__descriptor, "lease_result",
		     FIELD_FRAME_LEASE_RESULT);

	expect_field(&ringmq__delivery__descriptor, "subscription",
		     FIELD_DELIVERY_SUBSCRIPTION);
	expect_field(&ringmq__delivery__descriptor, "lease_id",
		     FIELD_DELIVERY_LEASE_ID);
	expect_field(&ringmq__delivery__descriptor, "partition",
		     FIELD_DELIVERY_PARTITION);
	expect_field(&ringmq__delivery__descriptor, "offset",
		     FIELD_DELIVERY_OFFSET);
	expect_field(&ringmq__delivery__descriptor, "delivery_count",
		     FIELD_DELIVERY_DELIVERY_COUNT);
	expect_field(&ringmq__delivery__descriptor, "lease_remaining_ms",
		     FIELD_DELIVERY_LEASE_REMAINING_MS);
	expect_field(&ringmq__delivery__descriptor, "message",
		     FIELD_DELIVERY_MESSAGE);
	expect_field(&ringmq__delivery__descriptor, "publish_ms",
		     FIELD_DELIVERY_PUBLISH_MS);

	expect_field(&ringmq__message__descriptor, "payload",
		     FIELD_MESSAGE_PAYLOAD);
	expect_field(&ringmq__message__descriptor, "key", FIELD_MESSAGE_KEY);
	expect_field(&ringmq__message__descriptor, "headers",
		     FIELD_MESSAGE_HEADERS);
	expect_field(&ringmq__message__descriptor, "deliver_at_ms",
		     FIELD_MESSAGE_DELIVER_AT_MS);
	expect_field(&ringmq__message__descriptor, "delay_ms",
		     FIELD_MESSAGE_DELAY_MS);
	expect_field(&ringmq__message__descriptor, "dedup_id",
		     FIELD_MESSAGE_DEDUP_ID);
	expect_field(&ringmq__message__descriptor, "partition",
		     FIELD_MESSAGE_PARTITION);

	expect_field(&ringmq__header__descriptor, "name", FIELD_HEADER_NAME);
	expect_field(&ringmq__header__descriptor, "value", FIELD_HEADER_VALUE);

	expect_field(&ringmq__publish_ok__descriptor, "results",
		     FIELD_PUBLISH_OK_RESULTS);
	expect_field(&ringmq__publish_result__descriptor, "code",
		     FIELD_PUBLISH_RESULT_CODE);
	expect_field(&ringmq__publish_result__descriptor, "partition",
		     FIELD_PUBLISH_RESULT_PARTITION);
	expect_field(&ringmq__publish_result__descriptor, "offset",
		     FIELD_PUBLISH_RESULT_OFFSET);
	expect_field(&ringmq__publish_result__descriptor, "duplicate",
		     FIELD_PUBLISH_RESULT_DUPLICATE);
	expect_field(&ringmq__publish_result__descriptor, "message",
		     FIELD_PUBLISH_RESULT_MESSAGE);
	expect_field(&ringmq__publish_result__descriptor, "owner",
		     FIELD_PUBLISH_RESULT_OWNER);
	expect_field(&ringmq__publish_result__descriptor, "epoch",
		     FIELD_PUBLISH_RESULT_EPOCH);

	expect_field(&ringmq__lease_result__descriptor, "codes",
		     FIELD_LEASE_RESULT_CODES);
	expect_field(&ringmq__lease_result__descriptor, "remaining_ms",
		     FIELD_LEASE_RESULT_REMAINING_MS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_match_the_proto),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
