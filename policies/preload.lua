-- preload.lua: load datasets into the cache before the jobs that read them,
-- e.g. every night at 02:00 before the morning's training runs.
--
-- One line per dataset: `at` is a cron expression ("m h dom mon dow",
-- @daily, ...) or an interval ("6h"); `tz` its time zone ("UTC", "local",
-- "Europe/Berlin"); `tier` "ssd" (default) or "mem". Progress shows in
-- `agentctl stat` like any load; the result in `agentctl policy status`
-- and the agent's log.

local PRELOAD = {
  -- { path = "/datasets/train", at = "0 2 * * *", tz = "UTC" },
  -- { path = "/models/current", at = "@hourly", tier = "mem" },
}

for _, p in ipairs(PRELOAD) do
  strata.schedule(p.at, function()
    local job, err = strata.load(p.path, { recursive = true, tier = p.tier })
    if job then
      strata.log("preloading", p.path, "as job", job)
    else
      strata.log("cannot preload", p.path .. ":", err)
    end
  end, { tz = p.tz or "UTC" })
end
