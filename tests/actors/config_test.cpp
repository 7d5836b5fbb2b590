#include <gtest/gtest.h>
TEST(config, placeholder) { SUCCEED(); }
