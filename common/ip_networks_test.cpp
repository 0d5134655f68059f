#include "common/ip_networks.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi {
namespace {

TEST(IpNetworks, AddressesAndNetworks) {
  auto n = IpNetworks::parse({"127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8", "192.0.2.128/25"});
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(n->contains("127.0.0.1"));
  EXPECT_TRUE(n->contains("::ffff:127.0.0.1"));  // the same peer on a dual-stack socket
  EXPECT_TRUE(n->contains("::1"));
  EXPECT_TRUE(n->contains("[::1]"));
  EXPECT_TRUE(n->contains("10.255.1.2"));
  EXPECT_TRUE(n->contains("fdab::1"));
  EXPECT_TRUE(n->contains("192.0.2.200"));
  EXPECT_FALSE(n->contains("192.0.2.100"));
  EXPECT_FALSE(n->contains("127.0.0.2"));
  EXPECT_FALSE(n->contains("11.0.0.1"));
  EXPECT_FALSE(n->contains("fe80::1"));
  EXPECT_FALSE(n->contains(""));
  EXPECT_FALSE(n->contains("localhost"));
  EXPECT_FALSE(n->contains("127.0.0.1:80"));
}

TEST(IpNetworks, StarAndEmpty) {
  auto any = IpNetworks::parse({"*"});
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(any->contains("203.0.113.1"));
  EXPECT_TRUE(any->contains("2001:db8::1"));
  auto none = IpNetworks::parse({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(none->contains("127.0.0.1"));
  auto all4 = IpNetworks::parse({"0.0.0.0/0"});
  ASSERT_TRUE(all4.ok());
  EXPECT_TRUE(all4->contains("8.8.8.8"));
  EXPECT_FALSE(all4->contains("2001:db8::1"));
}

TEST(IpNetworks, RefusesWhatIsNoNetwork) {
  for (const char* bad : {"", "localhost", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "::/129",
                          "1.2.3", "10.0.0.0/8x", "**", "[10.0.0.1]"}) {
    EXPECT_FALSE(IpNetworks::check(bad).ok()) << bad;
    EXPECT_FALSE(IpNetworks::parse({"127.0.0.1", bad}).ok()) << bad;
  }
  EXPECT_TRUE(IpNetworks::check("*").ok());
  EXPECT_TRUE(IpNetworks::check("::/0").ok());
}

TEST(IpNetworks, CanonicalText) {
  EXPECT_EQ(IpAddress::parse("::ffff:10.1.2.3")->text(), "10.1.2.3");
  EXPECT_EQ(IpAddress::parse("2001:DB8:0::1")->text(), "2001:db8::1");
  EXPECT_FALSE(IpAddress::parse("[1.2.3.4]").has_value());
  EXPECT_FALSE(IpAddress::parse(std::string("1.2.3.4\0junk", 12)).has_value());
}

}  // namespace
}  // namespace aiowsgi
