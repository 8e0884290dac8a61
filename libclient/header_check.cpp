/*
 * header_check.cpp: ringmq.h must compile as C++ (extern "C" linkage).
 */
#include <ringmq.h>

int
main()
{
	ringmq_opts *opts = ringmq_opts_new();
	int rc = ringmq_opts_set(opts, "server", "127.0.0.1:1", nullptr, 0);

	ringmq_opts_free(opts);
	return rc == RINGMQ_OK ? 0 : 1;
}
