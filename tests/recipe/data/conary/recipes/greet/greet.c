#include <stdio.h>

int main(void)
{
#if GREETING
    puts("greet: built with the superclass's flags");
#endif
    return 0;
}
