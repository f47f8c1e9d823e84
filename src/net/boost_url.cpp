// Boost.URL's compiled part, built once here (Debian ships Boost.URL as headers
// only). The simulators read query parameters of upgrade requests with it and
// floodgate::redis parses redis:// URLs; both link floodgate::net, so the
// program gets one copy.
#include <boost/url/src.hpp>
