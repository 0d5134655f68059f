// Privileges: numeric ids are range-checked before anything is resolved or changed.
#include "master/privileges.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace aiowsgi::master {
namespace {

TEST(ResolveIdentity, UidPastTheRangeIsAnErrorNotRoot) {
  Identity id;
  id.uid = 77;
  Status s = resolve_identity("4294967296", "100", &id);  // 2^32: used to become uid 0
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("uid out of range"), std::string::npos) << s.message();
  EXPECT_EQ(id.uid, 77u);                                                         // *out untouched
  EXPECT_FALSE(resolve_identity("4294967295", "100", &id).ok());                  // (uid_t)-1
  EXPECT_FALSE(resolve_identity("99999999999999999999999999", "100", &id).ok());  // no throw
}

TEST(ResolveIdentity, GidPastTheRangeIsAnError) {
  Identity id;
  Status s = resolve_identity("", "4294967296", &id);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("gid out of range"), std::string::npos) << s.message();
  EXPECT_FALSE(resolve_identity("", "4294967295", &id).ok());
}

TEST(ResolveIdentity, NumbersInRangeAndJunkAsNames) {
  Identity id;
  ASSERT_TRUE(resolve_identity("4294967294", "4294967294", &id).ok());
  EXPECT_EQ(id.uid, 4294967294u);
  EXPECT_EQ(id.gid, 4294967294u);
  ASSERT_TRUE(resolve_identity("0", "", &id).ok());  // root has a passwd entry
  EXPECT_EQ(id.uid, 0u);
  // Not digits: looked up as names, which do not exist.
  EXPECT_FALSE(resolve_identity("-1", "100", &id).ok());
  EXPECT_FALSE(resolve_identity("12abc", "100", &id).ok());
  EXPECT_FALSE(resolve_identity("", "-5", &id).ok());
}

}  // namespace
}  // namespace aiowsgi::master
