// Boost.URL's compiled part, built once here (Debian ships Boost.URL as headers
// only). Endpoint::parse reads endpoint URLs with it, the simulators the query
// parameters of upgrade requests, and floodgate::redis its redis:// URLs; all
// link floodgate::net, so the program gets one copy.
#include <boost/url/src.hpp>
