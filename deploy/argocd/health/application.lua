-- Health of an Argo CD Application, for the app-of-apps in deploy/argocd/apps. Argo CD
-- stopped assessing Applications' health in v1.8, so a parent Application's sync waves would
-- not wait for a child to become Healthy; this restores it by passing the child's own health
-- through, so the CRDs (wave -2) are Healthy before the operator (wave -1) starts, and so on.
local hs = { status = "Progressing", message = "" }
if obj.status ~= nil and obj.status.health ~= nil and obj.status.health.status ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
