#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hello.h"

char *hello_greeting(const char *name)
{
    const char *fmt = "Hello, %s!";
    size_t n = strlen(fmt) + strlen(name) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, fmt, name);
    return s;
}

int hello_print(const char *name)
{
    char *s = hello_greeting(name);
    if (!s)
        return -1;
    puts(s);
    free(s);
    return 0;
}
