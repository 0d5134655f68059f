// The /metrics endpoint's request routing.
#include "master/stats_http.h"

#include <gtest/gtest.h>

#include <string>

namespace aiowsgi::master {
namespace {

TEST(StatsHttp, RoutesOnlyGetMetrics) {
  EXPECT_EQ(route_metrics_request("GET /metr"), MetricsRoute::kIncomplete);
  EXPECT_EQ(route_metrics_request("GET /metrics HTTP/1.1\r\n"), MetricsRoute::kMetrics);
  EXPECT_EQ(route_metrics_request("GET /metrics?x=1 HTTP/1.0\n"), MetricsRoute::kMetrics);
  EXPECT_EQ(route_metrics_request("HEAD /metrics HTTP/1.1\r\n"), MetricsRoute::kMetricsHead);
  EXPECT_EQ(route_metrics_request("POST /metrics HTTP/1.1\r\n"), MetricsRoute::kBadMethod);
  EXPECT_EQ(route_metrics_request("GET / HTTP/1.1\r\n"), MetricsRoute::kNotFound);
  EXPECT_EQ(route_metrics_request("garbage\r\n"), MetricsRoute::kBad);
  EXPECT_EQ(route_metrics_request(std::string(9000, 'x')), MetricsRoute::kBad);
}

}  // namespace
}  // namespace aiowsgi::master
