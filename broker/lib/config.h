/*
 * config: every broker setting, from one table.
 *
 * Each setting has a name (the flag without "--" and the config file key),
 * a type, a default, a unit and a help line. Defaults are applied, then the
 * config file (--config FILE: "key = value" lines, '#' comments), then the
 * flags; flags win. The result is one struct that nothing changes after
 * start-up.
 */
#ifndef RINGMQ_CONFIG_H
#define RINGMQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* When a publish is confirmed (--sync); the server maps it to the
 * store's mode. */
enum config_sync {
	CONFIG_SYNC_ALWAYS,
	CONFIG_SYNC_INTERVAL,
	CONFIG_SYNC_NEVER,
};

/* Who may connect (--auth). */
enum config_auth {
	/* Not configured: only clients on the broker's own host (loopback
	 * addresses), so that a broker is never open by accident. */
	CONFIG_AUTH_LOOPBACK,
	CONFIG_AUTH_OFF, /* every client that reaches --listen */
	CONFIG_AUTH_ON,	 /* users authenticate (SCRAM), from any host */
};

/* Whether TLS clients must show a certificate (--tls-client-auth); the
 * server maps it to net/tls's. */
enum config_tls_client_auth {
	CONFIG_TLS_CLIENT_AUTH_NONE,
	CONFIG_TLS_CLIENT_AUTH_OPTIONAL,
	CONFIG_TLS_CLIENT_AUTH_REQUIRE,
};

struct config {
	char listen[256];     /* HOST:PORT, port 0 picks a free one; or "off" */
	char tls_listen[256]; /* HOST:PORT of the TLS listener; "" = none */
	char tls_cert[1024];  /* PEM certificate chain; "" = none */
	char tls_key[1024];   /* PEM private key */
	char tls_ca[1024];    /* PEM CAs of client certificates; "" = none */
	int tls_client_auth;  /* enum config_tls_client_auth */
	int is_tls_user_san;  /* a client certificate's user: its first
			       * SAN, not its subject CN */
	char http[256];	      /* HOST:PORT of /metrics and /healthz, or "off" */
	int is_http_tls;      /* the HTTP port speaks HTTPS (tls-cert) */
	char http_token_file[1024]; /* "" = none */
	char http_token[256];	    /* read from it at load; "" = none */
	char data_dir[1024];
	char config_file[1024];
	char backup_dir[1024];	    /* "" = none */
	uint64_t max_storage_bytes; /* LMDB map size */
	int sync;		    /* enum config_sync */
	uint32_t sync_interval_ms;
	int is_journal;		    /* --journal on */
	uint64_t journal_max_bytes; /* --journal-max-bytes */
	uint32_t max_frame_bytes;
	uint32_t max_message_bytes;
	uint32_t max_batch_count;
	uint32_t max_header_count;
	uint32_t max_connections;
	uint64_t max_conn_out_bytes; /* stop reading a peer above this */
	uint32_t max_conn_pending;   /* ... or with this many requests
				      * waiting on commits */
	uint64_t lease_ms;	     /* default lease time of new queues */
	uint64_t max_lease_ms;	     /* default max lease of new queues */
	uint32_t max_deliveries;     /* default for new queues; 0 = unlimited */
	uint32_t shutdown_timeout_ms;
	uint32_t idle_timeout_ms;	/* silent peers: pinged, then closed */
	int auth;			/* enum config_auth */
	char auth_bootstrap_file[1024]; /* "" = none */
	char cluster[128];		/* "" = single broker */
	char broker_id[64];		/* "" = the host name */
	char advertise[256];		/* "" = the listen address */
	char etcd[1024];		/* client URLs, comma-separated */
	char etcd_user[128];
	char etcd_password_file[1024];
	char etcd_password[256]; /* read from it at load */
	char etcd_ca[1024];
	uint32_t cluster_lease_ms;
	int log_level; /* enum log_level */
	int is_log_json;
};

/* Outcome of config_load beyond success. */
enum {
	CONFIG_OK = 0,
	CONFIG_EXIT = 1, /* --help or --version printed; exit 0 */
};

/*
 * Fills cfg from defaults, the --config file if given, then argv.
 * @param[out] err  a message naming the flag, key or line, on failure.
 * @return CONFIG_OK, CONFIG_EXIT, or -1 on bad input (exit code 2).
 */
int config_load(struct config *cfg, int argc, char **argv, char *err,
		size_t errlen);

/* Writes the --help text (every setting, its default and unit). */
void config_usage(void *file);

/* Splits "HOST:PORT" ("[::1]:PORT" too). @return 0 or -1. */
int config_split_hostport(const char *s, char *host, size_t hostlen,
			  uint16_t *port);

#endif
