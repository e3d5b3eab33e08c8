-- Shared helpers of the llmplatform.io health checks. deploy/argocd/health.py prepends this
-- file to each kind's script: an argocd-cm health entry must be one self-contained script.
-- Written for Lua 5.1 (Argo CD runs gopher-lua).

-- The condition of type `ctype` in obj.status.conditions, or nil.
local function condition(obj, ctype)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

-- A Progressing verdict while the status does not yet describe the current spec (no status
-- at all, or status.observedGeneration behind metadata.generation), else nil. Without this a
-- fresh edit would report the verdict about the previous spec as if it were current.
local function stale(obj)
  if obj.status == nil then
    return { status = "Progressing", message = "Waiting for the llmplatform operator to write a status" }
  end
  local generation = obj.metadata.generation
  local observed = obj.status.observedGeneration
  if generation ~= nil and (observed == nil or observed < generation) then
    return {
      status = "Progressing",
      message = "Waiting for the llmplatform operator to observe generation " .. tostring(generation)
        .. " (status describes " .. tostring(observed or "none") .. ")",
    }
  end
  return nil
end

-- "Type=Status Reason: message", as `kubectl describe` would tell it.
local function describe(c)
  local text = c.type .. "=" .. tostring(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " " .. c.reason
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

-- The verdict for a condition that must be True to be Healthy. `waiting` lists the reasons
-- (of a False condition) that the operator expects to clear on its own: Progressing. Unknown
-- is always Progressing; any other False reason needs a person: Degraded.
local function verdict(c, waiting)
  if c.status == "True" then
    return { status = "Healthy", message = describe(c) }
  end
  if c.status == "False" and not waiting[c.reason] then
    return { status = "Degraded", message = describe(c) }
  end
  return { status = "Progressing", message = describe(c) }
end

-- The health of a kind that is healthy when its Ready condition is True (see `verdict` for
-- `waiting`): Progressing while the status is stale or has no Ready condition yet.
local function ready_verdict(obj, waiting)
  local hs = stale(obj)
  if hs ~= nil then
    return hs
  end
  local ready = condition(obj, "Ready")
  if ready == nil then
    return { status = "Progressing", message = "Waiting for the Ready condition" }
  end
  return verdict(ready, waiting)
end
