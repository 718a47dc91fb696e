-- Loaded by busted before any spec (see .busted). Makes the freshly built
-- module and lua/ reachable however busted was started, and exposes the
-- test-server URIs that spec/server/with-servers (or the user) exported.
local cpath = os.getenv("XDBTX_CPATH")
if cpath then package.cpath = cpath .. ";" .. package.cpath end
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
