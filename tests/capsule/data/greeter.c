#include <hello.h>

int main(int argc, char **argv)
{
    return hello_print(argc > 1 ? argv[1] : "world") == 0 ? 0 : 1;
}
