// The doctest runner shared by every fofa-tests-<area> executable.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
