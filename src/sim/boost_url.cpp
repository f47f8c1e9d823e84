// Boost.URL's compiled part, built once here (Debian ships Boost.URL as headers
// only). The simulators use it to read query parameters of upgrade requests.
// If another floodgate library ever needs Boost.URL, move this file to a place
// both link, so that the program gets one copy.
#include <boost/url/src.hpp>
