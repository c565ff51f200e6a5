#ifndef HELLO_H
#define HELLO_H
/* Returns a greeting for name; the caller frees it. */
char *hello_greeting(const char *name);
/* Prints a greeting for name on standard output. */
int hello_print(const char *name);
#endif
