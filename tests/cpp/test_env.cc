// The environment settings' parsers (util/env.h): what counts as off, what as a number, and that
// a malformed value is reported rather than read as something else.
#include <gtest/gtest.h>

#include <cstdlib>

#include "util/env.h"

namespace longspec {
namespace {

constexpr const char* kName = "LONGSPEC_TEST_ENV_SETTING";

TEST(Env, FlagOffSpellingsAndFallback) {
  unsetenv(kName);
  EXPECT_TRUE(EnvFlag(kName, true));
  EXPECT_FALSE(EnvFlag(kName, false));
  setenv(kName, "", 1);
  EXPECT_TRUE(EnvFlag(kName, true));
  for (const char* off : {"0", "false", "off"}) {
    setenv(kName, off, 1);
    EXPECT_FALSE(EnvFlag(kName, true)) << off;
  }
  for (const char* on : {"1", "true", "on", "yes"}) {
    setenv(kName, on, 1);
    EXPECT_TRUE(EnvFlag(kName, false)) << on;
  }
  unsetenv(kName);
}

TEST(Env, NumberTakesWholeNumbersAndRefusesTheRest) {
  double x = 7.0;
  unsetenv(kName);
  EXPECT_TRUE(EnvNumber(kName, &x));
  EXPECT_EQ(x, 7.0);  // untouched
  setenv(kName, "", 1);
  EXPECT_TRUE(EnvNumber(kName, &x));
  EXPECT_EQ(x, 7.0);
  setenv(kName, "163", 1);
  EXPECT_TRUE(EnvNumber(kName, &x));
  EXPECT_EQ(x, 163.0);
  setenv(kName, "0.25", 1);
  EXPECT_TRUE(EnvNumber(kName, &x));
  EXPECT_EQ(x, 0.25);
  for (const char* bad : {"lots", "12kb", "3 ", " ", "1e"}) {
    setenv(kName, bad, 1);
    x = 7.0;
    EXPECT_FALSE(EnvNumber(kName, &x)) << bad;
    EXPECT_EQ(x, 7.0) << bad;
  }
  unsetenv(kName);
}

}  // namespace
}  // namespace longspec
