// Privileges: numeric ids are range-checked before anything is resolved or changed.
#include "master/privileges.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace aiowsgi::master {
namespace {

TEST(ResolveIdentity, UidPastTheRangeIsAnErrorNotRoot) {
  Result<Identity> id = resolve_identity("4294967296", "100");  // 2^32: used to become uid 0
  EXPECT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("uid out of range"), std::string::npos)
      << id.status().message();
  EXPECT_FALSE(resolve_identity("4294967295", "100").ok());                  // (uid_t)-1
  EXPECT_FALSE(resolve_identity("99999999999999999999999999", "100").ok());  // no throw
}

TEST(ResolveIdentity, GidPastTheRangeIsAnError) {
  Result<Identity> id = resolve_identity("", "4294967296");
  EXPECT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find("gid out of range"), std::string::npos)
      << id.status().message();
  EXPECT_FALSE(resolve_identity("", "4294967295").ok());
}

TEST(ResolveIdentity, NumbersInRangeAndJunkAsNames) {
  Result<Identity> id = resolve_identity("4294967294", "4294967294");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id.value().uid, 4294967294u);
  EXPECT_EQ(id.value().gid, 4294967294u);
  Result<Identity> root = resolve_identity("0", "");
  ASSERT_TRUE(root.ok());  // root has a passwd entry
  EXPECT_EQ(root.value().uid, 0u);
  // Not digits: looked up as names, which do not exist.
  EXPECT_FALSE(resolve_identity("-1", "100").ok());
  EXPECT_FALSE(resolve_identity("12abc", "100").ok());
  EXPECT_FALSE(resolve_identity("", "-5").ok());
}

}  // namespace
}  // namespace aiowsgi::master
