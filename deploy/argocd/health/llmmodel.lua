-- Health of an LLMModel (llmplatform.io). Ready=True: Healthy. A serving model waits for its
-- Deployment (Ready Unknown DeploymentPending, or False DeploymentUnavailable): Progressing,
-- as Argo CD treats a rolling Deployment. A missing Secret or key (SecretNotFound,
-- SecretKeyNotFound) or a spec the operator rejects (InvalidSpec): Degraded.
local hs = stale(obj)
if hs ~= nil then
  return hs
end
local ready = condition(obj, "Ready")
if ready == nil then
  return { status = "Progressing", message = "Waiting for the Ready condition" }
end
return verdict(ready, { DeploymentPending = true, DeploymentUnavailable = true })
