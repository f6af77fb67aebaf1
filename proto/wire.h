/* proto/wire.h: gortd's wire format: length-prefixed protobuf frames with SCM_RIGHTS fds, checked before protobuf-c sees them. */
#ifndef GORT_WIRE_H
#define GORT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/gort.pb-c.h"

/* A frame: a little-endian uint32 length, then that many bytes of one message. */
#define WIRE_HEADER_SIZE   4u
#define WIRE_REQUEST_MAX   (1u << 20)  /* a request (from any client) */
#define WIRE_REPLY_MAX     (64u << 20) /* a reply (from the daemon; ps of a million goroutines) */
#define WIRE_FDS_MAX       4           /* fds on one frame: a binary and three stdio fds */
#define WIRE_DEPTH_MAX     8           /* message nesting */
#define WIRE_REQUEST_REPEATED_MAX 1024 /* elements of one repeated field in a request */
#define WIRE_REPLY_REPEATED_MAX   (1u << 21)

/* What wire_reader_* return besides -errno. */
enum {
	WIRE_MORE = 0,  /* the frame is not complete yet */
	WIRE_FRAME = 1, /* a whole frame is ready: wire_reader_take */
	WIRE_EOF = 2,   /* the peer closed between frames */
};

/*
 * An incremental frame decoder. It only ever asks for the bytes of the current
 * frame (never past its end), so fds arriving with a frame's bytes belong to that
 * frame. Errors (negative errno) are final for the connection:
 *   -EMSGSIZE      the length prefix exceeds the limit
 *   -EPROTO        the peer closed in the middle of a frame (truncated)
 *   -ETOOMANYREFS  more fds than WIRE_FDS_MAX, or the kernel truncated them (MSG_CTRUNC)
 *   -EBADMSG       ancillary data other than SCM_RIGHTS
 *   other          from recvmsg
 */
struct wire_reader {
	uint32_t max;              /* largest body accepted */
	uint8_t hdr[WIRE_HEADER_SIZE];
	uint32_t hdr_got;
	uint32_t len;              /* body length, once hdr_got == 4 */
	uint32_t got;
	uint32_t cap;              /* bytes allocated at body: grows with the data */
	uint8_t *body;
	int fds[WIRE_FDS_MAX];     /* received with this frame, O_CLOEXEC */
	unsigned nfds;
};

/* Sets up r for bodies of at most max bytes. This function can't fail. */
void wire_reader_init(struct wire_reader *r, uint32_t max);
/* Frees the buffer and closes fds received for an unfinished or untaken frame.
 * Accepts a reader that was never used; leaves it reusable. */
void wire_reader_deinit(struct wire_reader *r);
/* One recvmsg on fd (blocking or not, as the socket is; EINTR is retried) for
 * the current frame: WIRE_MORE, WIRE_FRAME, WIRE_EOF, -EAGAIN when a
 * non-blocking socket has nothing more, or -errno as above. */
int wire_reader_recv(struct wire_reader *r, int fd);
/* Feeds bytes from memory (the fuzzer, tests): consumes what the current frame
 * needs and stores how much in *ret_used; returns as wire_reader_recv. A
 * zero-length feed means end of stream. */
int wire_reader_feed(struct wire_reader *r, const uint8_t *data, size_t n, size_t *ret_used);
/* Hands over a complete frame: the body (caller frees; NULL for an empty body),
 * its length, and its fds (caller closes; up to WIRE_FDS_MAX in ret_fds). The
 * reader starts on the next frame. */
void wire_reader_take(struct wire_reader *r, uint8_t **ret_body, uint32_t *ret_len,
		      int *ret_fds, unsigned *ret_nfds);

/* Checks that buf is a well-formed encoding of a message of type desc before
 * protobuf-c parses it: every varint, length and wire type sound, known fields of
 * the declared wire type, no field or oneof given twice, nesting at most
 * WIRE_DEPTH_MAX, strings valid UTF-8 without NUL, repeated fields at most
 * max_repeated elements. Returns 0 or -EBADMSG, with a reason in *ret_why
 * (a static string) when ret_why is not NULL. */
int wire_validate(const ProtobufCMessageDescriptor *desc, const uint8_t *buf, size_t len,
		  uint32_t max_repeated, const char **ret_why);

/* Validates and unpacks a Request (free with gort__v1__request__free_unpacked).
 * Returns 0 or -EBADMSG (reason in *ret_why) / -ENOMEM. */
int wire_request_unpack(const uint8_t *buf, size_t len, Gort__V1__Request **ret, const char **ret_why);
/* The same for a Reply. */
int wire_reply_unpack(const uint8_t *buf, size_t len, Gort__V1__Reply **ret, const char **ret_why);

/* Packs msg into a new frame (header + body) of at most max body bytes: the
 * caller frees *ret. Returns 0, -EMSGSIZE or -ENOMEM. */
int wire_frame_pack(const ProtobufCMessage *msg, uint32_t max, uint8_t **ret, size_t *ret_len);

/* Sends a whole frame on a blocking socket, fds attached to its first byte
 * (MSG_NOSIGNAL). Returns 0 or -errno; the caller still owns the fds. */
int wire_send(int sock, const uint8_t *frame, size_t len, const int *fds, unsigned nfds);

/* The default socket: $GORT_SOCKET, else /run/gort/gortd.sock as root, else
 * $XDG_RUNTIME_DIR/gort/gortd.sock (API.md). Returns 0, -ENAMETOOLONG, or
 * -ENXIO when none applies (not root and no XDG_RUNTIME_DIR). */
int wire_default_socket(char *buf, size_t n);

/* The one-line description of a request body case, for logs ("stats", "submit"). */
const char *wire_request_name(const Gort__V1__Request *req);

#endif
