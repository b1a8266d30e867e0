// RESERVOIR_ASSERT's real failure path, which the unit tests replace with a
// handler: a report on stderr, then abort. ctest runs it and expects both.
#include <reservoir/core/assert.hpp>

int main(int argc, char**) {
    RESERVOIR_ASSERT(argc == 0, "a program has no arguments");
    return 0;
}
