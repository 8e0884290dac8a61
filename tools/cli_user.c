/*
 * cli_user.c: user add, passwd, delete, list; acl set, delete, list.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 1024 /* the library's rule: printable ASCII */

static int
is_user_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

int
cli_user_name_is_valid(const char *name)
{
	size_t n = 0;

	for (; name[n] != '\0'; n++)
		if (n >= 128 ||
		    !(is_user_char((unsigned char)name[n]) || name[n] == '@'))
			return 0;
	return n > 0;
}

int
cli_pattern_is_valid(const char *pattern)
{
	size_t n = 0;

	for (; pattern[n] != '\0'; n++)
		if (n >= 200 || !(is_user_char((unsigned char)pattern[n]) ||
				  pattern[n] == '*'))
			return 0;
	return n > 0;
}

int
cli_parse_perms(const char *s, unsigned *perms)
{
	static const struct {
		const char *name;
		unsigned bits;
	} words[] = {
		{ "publish", RINGMQ_PERM_PUBLISH },
		{ "consume", RINGMQ_PERM_CONSUME },
		{ "admin", RINGMQ_PERM_ADMIN },
		{ "all", RINGMQ_PERM_ALL },
	};

	*perms = 0;
	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		size_t i;

		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strlen(words[i].name) == len &&
			    strncmp(s, words[i].name, len) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0]))
			return -1;
		*perms |= words[i].bits;
		s += len;
		if (*s == ',' && *++s == '\0')
			return -1;
	}
	return *perms != 0 ? 0 : -1;
}

static const char *const limit_names[] = {
	"max-connections",
	"publish-rate",
	"publish-bytes-rate",
	"max-leases",
};

int
cli_parse_limit(const char *s, const char **namep, uint64_t *valuep)
{
	const char *eq = strchr(s, '=');
	char *end;

	if (eq == NULL || eq[1] < '0' || eq[1] > '9')
		return -1;
	for (size_t i = 0; i < sizeof(limit_names) / sizeof(*limit_names);
	     i++) {
		if (strlen(limit_names[i]) != (size_t)(eq - s) ||
		    strncmp(s, limit_names[i], (size_t)(eq - s)) != 0)
			continue;
		errno = 0;
		*valuep = strtoull(eq + 1, &end, 10);
		if (errno != 0 || *end != '\0' ||
		    ((i == 0 || i == 3) && *valuep > UINT32_MAX))
			return -1;
		if (namep != NULL)
			*namep = limit_names[i];
		return 0;
	}
	return -1;
}

int
cmd_user_set(const struct cli *cli, ringmq_client *c)
{
	for (size_t i = 1; i < cli->nargs; i++) {
		const char *name = NULL;
		uint64_t v = 0;
		int rc;

		(void)cli_parse_limit(cli->args[i], &name, &v); /* checked */
		rc = ringmq_user_set_limit(c, cli->args[0], name, v);
		if (rc != RINGMQ_OK)
			return cli_fail(c, rc, "user set");
	}
	cli_print_ok(cli);
	return RINGMQ_OK;
}

/* A password's rule, as the library checks it: 1 to PASSWORD_MAX
 * printable ASCII characters. */
static int
password_is_valid(const char *pw)
{
	size_t n = 0;

	for (; pw[n] != '\0'; n++)
		if (n >= PASSWORD_MAX || pw[n] < 0x20 || pw[n] > 0x7e)
			return 0;
	return n > 0;
}

/* Reads one line of fd into buf (the line end dropped). -1 on EOF before
 * any byte or an error. */
static int
read_line(int fd, char *buf, size_t size)
{
	size_t n = 0;
	char ch;

	for (;;) {
		ssize_t r = read(fd, &ch, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return n > 0 ? 0 : -1;
		if (ch == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = ch;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return 0;
}

/* Asks for a password on the terminal, without echo. */
static int
prompt(int tty, const char *what, char *buf, size_t size)
{
	struct termios old, quiet;
	int rc;

	if (tcgetattr(tty, &old) < 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	if (write(tty, what, strlen(what)) < 0 ||
	    tcsetattr(tty, TCSAFLUSH, &quiet) < 0)
		return -1;
	rc = read_line(tty, buf, size);
	(void)tcsetattr(tty, TCSAFLUSH, &old);
	if (write(tty, "\n", 1) < 0)
		rc = -1;
	return rc;
}

/* From the terminal, asked twice. */
static int
password_from_tty(char *buf, size_t size)
{
	char again[PASSWORD_MAX + 2];
	int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
	int rc = -1;

	if (tty < 0) {
		cli_error(RINGMQ_USAGE,
			  "no password: give --new-password-file FILE, set "
			  "RINGMQ_NEW_PASSWORD, or run on a terminal");
		return -1;
	}
	if (prompt(tty, "New password: ", buf, size) == 0 &&
	    prompt(tty, "Again: ", again, sizeof(again)) == 0) {
		rc = strcmp(buf, again) == 0 ? 0 : -2;
		if (rc < 0)
			cli_error(RINGMQ_USAGE, "the passwords differ");
	} else
		cli_error(RINGMQ_USAGE, "cannot read a password from the "
					"terminal");
	explicit_bzero(again, sizeof(again));
	close(tty);
	return rc;
}

int
cli_read_new_password(struct cli *cli)
{
	char buf[PASSWORD_MAX + 2];
	const char *env = getenv("RINGMQ_NEW_PASSWORD");
	int rc = 0;

	buf[0] = '\0';
	if (cli->new_password_file != NULL) {
		int fd = open(cli->new_password_file, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || read_line(fd, buf, sizeof(buf)) < 0) {
			cli_error(RINGMQ_USAGE, "--new-password-file %s: %s",
				  cli->new_password_file,
				  fd < 0 ? strerror(errno) : "empty");
			rc = -1;
		}
		if (fd >= 0)
			close(fd);
	} else if (env != NULL && env[0] != '\0')
		snprintf(buf, sizeof(buf), "%s", env);
	else
		rc = password_from_tty(buf, sizeof(buf));
	if (rc == 0 && !password_is_valid(buf)) {
		cli_error(RINGMQ_USAGE,
			  "a password is 1 to %d printable ASCII "
			  "characters",
			  PASSWORD_MAX);
		rc = -1;
	}
	if (rc == 0) {
		cli->new_password = strdup(buf);
		if (cli->new_password == NULL) {
			cli_error(RINGMQ_INTERNAL, "out of memory");
			rc = -1;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	return rc < 0 ? -1 : 0;
}

int
cmd_user_add(const struct cli *cli, ringmq_client *c)
{
	int rc = ringmq_user_add(c, cli->args[0], cli->new_password);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "user add");
	cli_print_ok(cli);
	return RINGMQ_OK;
}

int
cmd_user_passwd(const struct cli *cli, ringmq_client *c)
{
	int rc = ringmq_user_passwd(c, cli->args[0], cli->new_password);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "user passwd");
	cli_print_ok(cli);
	return RINGMQ_OK;
}

int
cmd_user_delete(const struct cli *cli, ringmq_client *c)
{
	int rc = ringmq_user_delete(c, cli->args[0]);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "user delete");
	cli_print_ok(cli);
	return RINGMQ_OK;
}

/* "publish,consume" for bits. */
static const char *
perms_text(unsigned bits, char *buf, size_t size)
{
	static const char *const names[] = { "publish", "consume", "admin" };
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 3; i++)
		if ((bits & (1u << i)) && n < size)
			n += (size_t)snprintf(buf + n, size - n, "%s%s",
					      n ? "," : "", names[i]);
	return buf;
}

/* The permissions of user i as a JSON array. */
static void
print_perms_json(const ringmq_user_list *l, size_t i)
{
	putchar('[');
	for (size_t j = 0; j < ringmq_user_list_perm_count(l, i); j++) {
		unsigned bits = ringmq_user_list_perm_bits(l, i, j);

		printf("%s{\"pattern\":", j ? "," : "");
		cli_json_str(stdout, ringmq_user_list_perm_pattern(l, i, j));
		printf(",\"publish\":%s,\"consume\":%s,\"admin\":%s}",
		       bits & RINGMQ_PERM_PUBLISH ? "true" : "false",
		       bits & RINGMQ_PERM_CONSUME ? "true" : "false",
		       bits & RINGMQ_PERM_ADMIN ? "true" : "false");
	}
	putchar(']');
}

int
cmd_user_list(const struct cli *cli, ringmq_client *c)
{
	ringmq_user_list *l;
	char when[40];
	int rc = ringmq_user_list_get(c, &l);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "user list");
	if (cli->is_json) {
		printf("{\"users\":[");
		for (size_t i = 0; i < ringmq_user_list_count(l); i++) {
			printf("%s{\"name\":", i ? "," : "");
			cli_json_str(stdout, ringmq_user_list_name(l, i));
			printf(",\"created\":\"%s\",\"connections\":%u,",
			       cli_format_time(
				       when, sizeof(when),
				       ringmq_user_list_created_ms(l, i)),
			       ringmq_user_list_connections(l, i));
			for (size_t k = 0;
			     k < sizeof(limit_names) / sizeof(*limit_names);
			     k++)
				printf("\"%s\":%llu,", limit_names[k],
				       (unsigned long long)
					       ringmq_user_list_limit(
						       l, i, limit_names[k]));
			printf("\"permissions\":");
			print_perms_json(l, i);
			putchar('}');
		}
		printf("]}\n");
	} else {
		printf("%-24s %-24s %11s %11s\n", "NAME", "CREATED",
		       "CONNECTIONS", "PERMISSIONS");
		for (size_t i = 0; i < ringmq_user_list_count(l); i++)
			printf("%-24s %-24s %11u %11zu\n",
			       ringmq_user_list_name(l, i),
			       cli_format_time(
				       when, sizeof(when),
				       ringmq_user_list_created_ms(l, i)),
			       ringmq_user_list_connections(l, i),
			       ringmq_user_list_perm_count(l, i));
	}
	ringmq_user_list_free(l);
	return RINGMQ_OK;
}

int
cmd_acl_set(const struct cli *cli, ringmq_client *c)
{
	unsigned perms = 0;
	int rc;

	(void)cli_parse_perms(cli->args[2], &perms); /* checked already */
	rc = ringmq_acl_set(c, cli->args[0], cli->args[1], perms);
	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "acl set");
	cli_print_ok(cli);
	return RINGMQ_OK;
}

int
cmd_acl_delete(const struct cli *cli, ringmq_client *c)
{
	int rc = ringmq_acl_delete(c, cli->args[0], cli->args[1]);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "acl delete");
	cli_print_ok(cli);
	return RINGMQ_OK;
}

int
cmd_acl_list(const struct cli *cli, ringmq_client *c)
{
	const char *only = cli->nargs > 0 ? cli->args[0] : NULL;
	ringmq_user_list *l;
	char text[32];
	int found = 0, first = 1;
	int rc = ringmq_user_list_get(c, &l);

	if (rc != RINGMQ_OK)
		return cli_fail(c, rc, "acl list");
	if (cli->is_json)
		printf("{\"permissions\":[");
	else
		printf("%-24s %-32s %s\n", "USER", "PATTERN", "PERMS");
	for (size_t i = 0; i < ringmq_user_list_count(l); i++) {
		const char *name = ringmq_user_list_name(l, i);

		if (only != NULL && strcmp(name, only) != 0)
			continue;
		found = 1;
		for (size_t j = 0; j < ringmq_user_list_perm_count(l, i); j++) {
			const char *pat =
				ringmq_user_list_perm_pattern(l, i, j);
			unsigned bits = ringmq_user_list_perm_bits(l, i, j);

			if (!cli->is_json) {
				printf("%-24s %-32s %s\n", name, pat,
				       perms_text(bits, text, sizeof(text)));
				continue;
			}
			printf("%s{\"user\":", first ? "" : ",");
			cli_json_str(stdout, name);
			printf(",\"pattern\":");
			cli_json_str(stdout, pat);
			printf(",\"perms\":\"%s\"}",
			       perms_text(bits, text, sizeof(text)));
			first = 0;
		}
	}
	if (cli->is_json)
		printf("]}\n");
	ringmq_user_list_free(l);
	if (only != NULL && !found) {
		cli_error(RINGMQ_USER_NOT_FOUND, "acl list: no user %s", only);
		return RINGMQ_USER_NOT_FOUND;
	}
	return RINGMQ_OK;
}
