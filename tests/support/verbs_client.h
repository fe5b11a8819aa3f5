/*
 * What the tests' verbs client programs (crypto_traffic.c, crypto_peer.c) share: stopping at
 * the first failure of the plumbing, and reading the hex files the tests write (wrapped
 * credentials and keys, generated through the officer for each run).
 */
#ifndef HCASIM_TESTS_VERBS_CLIENT_H
#define HCASIM_TESTS_VERBS_CLIENT_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Print "WHAT failed: strerror(errno)" and exit 1: the test reads that line. */
static void die(const char *what)
{
	printf("%s failed: %s\n", what, strerror(errno));
	exit(1);
}

/* Read LEN bytes written as hex digits from PATH; 0, or -1 if it holds fewer. */
static int read_hex(const char *path, unsigned char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t i;
	int ok = f != NULL;

	for (i = 0; ok && i < len; i++)
		ok = fscanf(f, "%2hhx", &out[i]) == 1;
	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

#endif
