-- Argo CD health check for healthgate.io/HealthPolicy.
-- Install: argocd-cm key resource.customizations.health.healthgate.io_HealthPolicy (docs/argocd.md).
-- Runs in Argo CD's gopher-lua (Lua 5.1) with the base and table libraries only.
local hs = {}

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- Reasons (with RolloutHealthy=Unknown) for which a rollout holds without blaming the new
-- revision: it waits for a dependency, the cluster or the guard.
local holds = {
  DependencyDegraded = true,
  DeepCheckUnreachable = true,
  Unschedulable = true,
  CorrelatedFailure = true,
  ServingFloor = true,
}

local status = obj.status
local generation = obj.metadata.generation or 0
if status == nil or (status.observedGeneration or 0) < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for healthgate to observe generation " .. generation
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
  return hs
end

local rollout = condition(status, "RolloutHealthy")
local phase = status.rolloutPhase
if (rollout ~= nil and rollout.status == "False") or phase == "Aborted" then
  hs.status = "Degraded"
  if rollout ~= nil and rollout.status == "False" then
    hs.message = (rollout.reason or "RolloutAborted") .. ": " .. (rollout.message or "")
  else
    hs.message = "rollout phase Aborted"
  end
  return hs
end
if (rollout ~= nil and rollout.status == "Unknown" and holds[rollout.reason]) or phase == "Holding" or phase == "Inconclusive" then
  hs.status = "Suspended"
  if rollout ~= nil and rollout.status == "Unknown" then
    hs.message = (rollout.reason or "RolloutHeld") .. ": " .. (rollout.message or "")
  else
    hs.message = "rollout phase " .. phase
  end
  return hs
end

if (rollout ~= nil and rollout.status == "Unknown") or phase == "Progressing" or phase == "Baking" then
  hs.status = "Progressing"
  hs.message = "rollout " .. (phase or "starting")
  if rollout ~= nil and rollout.message ~= nil then
    hs.message = hs.message .. ": " .. rollout.message
  end
  return hs
end

-- Findings (probes, headroom) describe the selected Deployments, not this policy's health:
-- the policy is Healthy and says what it found.
hs.status = "Healthy"
local targets = status.targetCount or 0
hs.message = "governing " .. targets .. " Deployment(s), " .. (status.compliantCount or 0) .. " compliant"
for _, kind in ipairs({ "LivenessShallow", "HeadroomSufficient" }) do
  local c = condition(status, kind)
  if c ~= nil and c.status == "False" then
    hs.message = hs.message .. "; " .. kind .. "=False (" .. (c.reason or "") .. ")"
  end
end
return hs
