#include "worker/protocol/mime_types.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace aiowsgi::worker {
namespace {

TEST(MimeTypes, BuiltInTable) {
  MimeTypes m;
  EXPECT_EQ(m.lookup("site.css"), "text/css");
  EXPECT_EQ(m.lookup("dir.d/INDEX.HTML"), "text/html");
  EXPECT_EQ(m.lookup("a.tar.gz"), "application/gzip");
  EXPECT_EQ(m.lookup("noext"), "application/octet-stream");
  EXPECT_EQ(m.lookup(".hidden"), "application/octet-stream");
  EXPECT_EQ(m.lookup("trailing."), "application/octet-stream");
  EXPECT_EQ(m.lookup("x.unknownext"), "application/octet-stream");
}

TEST(MimeTypes, MimeTypesTextOverrides) {
  MimeTypes m;
  EXPECT_EQ(m.add_mime_types_text("# comment\n"
                                  "text/x-custom\tcst  CST2\n"
                                  "application/javascript js # trailing comment\n"
                                  "not-a-type foo\n"
                                  "image/x-none\n"),
            3u);
  EXPECT_EQ(m.lookup("a.cst"), "text/x-custom");
  EXPECT_EQ(m.lookup("a.cst2"), "text/x-custom");
  EXPECT_EQ(m.lookup("a.js"), "application/javascript");
  EXPECT_EQ(m.lookup("a.foo"), "application/octet-stream");
}

TEST(MimeTypes, DebianFileWhenPresent) {
  if (access("/etc/mime.types", R_OK) != 0) GTEST_SKIP() << "no /etc/mime.types";
  MimeTypes m;
  EXPECT_GT(m.load_file("/etc/mime.types"), 100u);
  EXPECT_EQ(m.lookup("a.png"), "image/png");
  EXPECT_EQ(m.lookup("a.css"), "text/css");
  EXPECT_EQ(m.load_file("/nonexistent/mime.types"), 0u);
}

}  // namespace
}  // namespace aiowsgi::worker
