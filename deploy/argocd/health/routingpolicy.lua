-- Health of a RoutingPolicy (llmplatform.io). Ready=True (AllModelsReady): Healthy. Every
-- Ready=False reason names something a person must fix (MissingModels, UnusableModels,
-- DefaultConflict, InvalidSpec): Degraded, with the operator's message naming the models.
local hs = stale(obj)
if hs ~= nil then
  return hs
end
local ready = condition(obj, "Ready")
if ready == nil then
  return { status = "Progressing", message = "Waiting for the Ready condition" }
end
return verdict(ready, {})
