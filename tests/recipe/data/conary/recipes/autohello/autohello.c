#include <stdio.h>

int main(void)
{
#ifdef WITH_GREETING
    puts("autohello: configured with the greeting");
#else
    puts("autohello");
#endif
    return 0;
}
