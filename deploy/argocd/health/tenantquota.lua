-- Health of a TenantQuota (llmplatform.io). Approved says whether the request fits the
-- policy's ceilings, Ready whether the gateway enforces it with its keys.
--   Approved=False (ExceedsCeiling, TierNotInPolicy, PolicyNotFound, InvalidSpec): Degraded,
--     also while an earlier grant stays in force (Ready=True PreviousGrantInForce): the
--     request in Git is not what is enforced.
--   Ready=False KeysPending (key Secrets not created yet): Progressing.
--   Ready=False for any other reason (DuplicateApiKey...): Degraded.
--   Both True: Healthy.
local hs = stale(obj)
if hs ~= nil then
  return hs
end
local approved = condition(obj, "Approved")
local ready = condition(obj, "Ready")
if approved == nil or ready == nil then
  return { status = "Progressing", message = "Waiting for the Approved and Ready conditions" }
end
hs = verdict(approved, {})
if hs.status ~= "Healthy" then
  if ready.status == "True" then
    hs.message = hs.message .. "; " .. describe(ready)
  end
  return hs
end
return verdict(ready, { KeysPending = true })
