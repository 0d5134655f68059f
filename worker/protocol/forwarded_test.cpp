// Tests for the forwarding fields of a trusted proxy (resolve_forwarded) and URL prefixes.

#include "worker/protocol/forwarded.h"

#include <gtest/gtest.h>

#include <string>

#include "common/url_prefix.h"

namespace aiowsgi::worker {
namespace {

IpNetworks nets(std::vector<std::string> specs) { return IpNetworks::parse(specs).value(); }

const IpNetworks kLoopback = nets({"127.0.0.1", "::1"});

TEST(Forwarded, OfferPicksOnlyForwardingFields) {
  ForwardedFields f;
  EXPECT_TRUE(f.offer("X-Forwarded-For", "1.2.3.4"));
  EXPECT_TRUE(f.offer("x-forwarded-proto", "https"));
  EXPECT_TRUE(f.offer("X-FORWARDED-HOST", "example.com"));
  EXPECT_TRUE(f.offer("X-Forwarded-Port", "443"));
  EXPECT_TRUE(f.offer("Forwarded", "for=1.2.3.4"));
  EXPECT_TRUE(f.offer("X-Script-Name", "/b"));
  EXPECT_TRUE(f.offer("X-Forwarded-Prefix", "/a"));
  EXPECT_FALSE(f.offer("X-Forwarded-Server", "x"));
  EXPECT_FALSE(f.offer("Host", "x"));
  EXPECT_FALSE(f.offer("Forwarded-For", "x"));
  EXPECT_EQ(f.x_prefix, "/a");  // X-Forwarded-Prefix wins over X-Script-Name
  EXPECT_TRUE(f.any());
  EXPECT_FALSE(ForwardedFields{}.any());
}

TEST(Forwarded, ClientIsRightmostUntrustedHop) {
  ForwardedFields f;
  f.x_for = "6.6.6.6, 198.51.100.7, 127.0.0.1";  // client-made, the client, a trusted proxy
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "198.51.100.7");
  f.x_for = "198.51.100.7";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "198.51.100.7");
  f.x_for = "10.0.0.5, 10.0.0.9";  // every hop trusted: the leftmost
  EXPECT_EQ(resolve_forwarded(f, nets({"10.0.0.0/8"})).client, "10.0.0.5");
  f.x_for = "6.6.6.6, 10.0.0.9";
  EXPECT_EQ(resolve_forwarded(f, nets({"*"})).client, "6.6.6.6");
  f.x_for = "[2001:db8::1]:4711, 192.0.2.1:80";  // ports and brackets as some proxies write
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "192.0.2.1");
  EXPECT_EQ(resolve_forwarded(f, nets({"192.0.2.0/24"})).client, "2001:db8::1");
  f.x_for = "::ffff:192.0.2.1";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "192.0.2.1");
}

TEST(Forwarded, ClientPortComesFromTheClientsNode) {
  ForwardedFields f;
  f.x_for = "[2001:db8::1]:4711, 192.0.2.1:80";
  ForwardedView v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ((v.client + " " + v.client_port), "192.0.2.1 80");
  v = resolve_forwarded(f, nets({"192.0.2.0/24"}));
  EXPECT_EQ((v.client + " " + v.client_port), "2001:db8::1 4711");
  f.x_for = "198.51.100.7, 127.0.0.1:5555";  // the trusted hop's port is not the client's
  v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ((v.client + " " + v.client_port), "198.51.100.7 ");
  for (const char* no_port : {"1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4:x1"}) {
    f.x_for = no_port;
    v = resolve_forwarded(f, kLoopback);
    EXPECT_EQ((v.client + " " + v.client_port), "1.2.3.4 ") << no_port;
  }
  f = ForwardedFields{};
  f.forwarded = "for=\"[2001:db8:cafe::17]:4711\", for=\"1.2.3.4:_obf\"";
  v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ((v.client + " " + v.client_port), "1.2.3.4 ");  // an obfuscated port is none
  f.forwarded = "for=\"[2001:db8:cafe::17]:4711\"";
  v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ((v.client + " " + v.client_port), "2001:db8:cafe::17 4711");
  f.forwarded = "for=unknown";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client_port, "");
}

TEST(Forwarded, MalformedValuesAreIgnored) {
  for (const char* bad : {"unknown", "", ",", "1.2.3.4.5", "2001:db8::1:80:x", "a b",
                          "1.2.3.4, nonsense", "256.1.1.1", "[::1", "_hidden"}) {
    ForwardedFields f;
    f.x_for = bad;
    EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "") << bad;
  }
  ForwardedFields f;
  f.x_proto = "ftp";
  f.x_host = "exa mple.com";
  f.x_port = "99999";
  f.x_prefix = "no-slash";
  ForwardedView v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ(v.scheme, "");
  EXPECT_EQ(v.host, "");
  EXPECT_EQ(v.port, "");
  EXPECT_EQ(v.prefix, "");
  f.x_port = "0";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).port, "");
  f.x_port = "44a";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).port, "");
}

TEST(Forwarded, ProtoHostPortPrefix) {
  ForwardedFields f;
  f.x_proto = "http, HTTPS";  // the nearest proxy's is the rightmost
  f.x_host = "shop.example.com:8443";
  f.x_port = "8443";
  f.x_prefix = "/shop/";
  ForwardedView v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ(v.scheme, "https");
  EXPECT_EQ(v.host, "shop.example.com:8443");
  EXPECT_EQ(v.port, "8443");
  EXPECT_EQ(v.prefix, "/shop");
}

TEST(Forwarded, Rfc7239) {
  ForwardedFields f;
  f.forwarded = "for=6.6.6.6, for=198.51.100.7;proto=https;host=\"example.com\", for=127.0.0.1";
  ForwardedView v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ(v.client, "198.51.100.7");
  EXPECT_EQ(v.scheme, "https");
  EXPECT_EQ(v.host, "example.com");
  f.forwarded = "For=\"[2001:db8:cafe::17]:4711\"";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "2001:db8:cafe::17");
  f.forwarded = "for=unknown";
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "");
  f.forwarded = "for";  // a pair without '='
  EXPECT_EQ(resolve_forwarded(f, kLoopback).client, "");
  // X-Forwarded-* win over Forwarded for the same information.
  f.forwarded = "for=6.6.6.6;proto=http";
  f.x_for = "198.51.100.7";
  f.x_proto = "https";
  v = resolve_forwarded(f, kLoopback);
  EXPECT_EQ(v.client, "198.51.100.7");
  EXPECT_EQ(v.scheme, "https");
}

TEST(UrlPrefix, NormalizeAndMatch) {
  std::string p;
  EXPECT_TRUE(normalize_prefix("/app/", &p));
  EXPECT_EQ(p, "/app");
  EXPECT_TRUE(normalize_prefix("/", &p));
  EXPECT_EQ(p, "");
  EXPECT_TRUE(normalize_prefix("/a/b", &p));
  EXPECT_EQ(p, "/a/b");
  for (const char* bad : {"", "app", "/a b", "/a%2Fb", "/a//b", "/a\n", "/\xc3\xa9"})
    EXPECT_FALSE(normalize_prefix(bad, &p)) << bad;
  EXPECT_TRUE(under_prefix("/app", "/app"));
  EXPECT_TRUE(under_prefix("/app/x", "/app"));
  EXPECT_FALSE(under_prefix("/apple", "/app"));
  EXPECT_FALSE(under_prefix("/", "/app"));
  EXPECT_TRUE(under_prefix("/anything", ""));
}

}  // namespace
}  // namespace aiowsgi::worker
