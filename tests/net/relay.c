/* A TCP relay for the transport tests: forwards connections from a local
 * port to the coordinator and cuts the first connection after a given
 * number of client-to-server bytes, as a flaky network would. Later
 * connections pass untouched. Usage: fx_relay LISTEN_PORT TARGET_PORT
 * DROP_AFTER_BYTES. Prints "dropped" on stderr when it cuts. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_on(int port)
{
	struct sockaddr_in a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(fd, 8) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int connect_to(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Forwards between c and s until either side closes or, if limit > 0, the
 * client has sent limit bytes. Returns 1 if it cut the connection. */
static int pump(int c, int s, long long limit)
{
	static char buf[1 << 16];
	struct pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
	long long up = 0;

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n, w, off = 0;
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0)
				return 0;
			if (i == 0 && limit > 0 && up + n >= limit)
				return 1;
			while (off < n) {
				w = write(p[1 - i].fd, buf + off,
				          (size_t)(n - off));
				if (w <= 0)
					return 0;
				off += w;
			}
			if (i == 0)
				up += n;
		}
	}
}

int main(int argc, char **argv)
{
	int lfd, first = 1;

	if (argc != 4) {
		fprintf(stderr, "usage: fx_relay LISTEN_PORT TARGET_PORT "
		                "DROP_AFTER_BYTES\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((lfd = listen_on(atoi(argv[1]))) < 0) {
		perror("fx_relay: listen");
		return 1;
	}
	for (;;) {
		int c = accept(lfd, NULL, NULL), s;
		if (c < 0)
			continue;
		if ((s = connect_to(atoi(argv[2]))) < 0) {
			close(c);
			continue;
		}
		if (pump(c, s, first ? atoll(argv[3]) : 0)) {
			fprintf(stderr, "dropped\n");
			first = 0;
		}
		close(c);
		close(s);
	}
}
