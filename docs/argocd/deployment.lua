-- Argo CD health check for apps/Deployment, aware of healthgate's gated rollouts.
-- Install: argocd-cm key resource.customizations.health.apps_Deployment (docs/argocd.md).
-- It replaces Argo CD's built-in Deployment check, so it keeps that check's logic (paused,
-- generation, progress deadline, replica counts) and adds healthgate's verdict, which the
-- built-in check cannot see: a rollout healthgate aborted keeps the Deployment short of its
-- updated replicas forever, and the built-in check calls that merely Progressing.
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

-- healthgate reasons (with RolloutHealthy=Unknown) for a rollout that holds without blaming the
-- new revision: it waits for a dependency, the cluster or the guard, not for a human to fix it.
local holds = {
  DependencyDegraded = true,
  DeepCheckUnreachable = true,
  Unschedulable = true,
  CorrelatedFailure = true,
  ServingFloor = true,
}

local spec = obj.spec or {}
local status = obj.status or {}
local name = obj.metadata.name

if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Deployment is paused"
  return hs
end

local generation = obj.metadata.generation or 0
if generation > (status.observedGeneration or 0) then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: observed deployment generation less than desired generation"
  return hs
end

local gated = condition(status, "healthgate.io/RolloutHealthy")
if gated ~= nil and gated.status == "False" then
  hs.status = "Degraded"
  hs.message = "healthgate " .. (gated.reason or "RolloutAborted") .. ": " .. (gated.message or "")
  return hs
end
if gated ~= nil and gated.status == "Unknown" and holds[gated.reason] then
  hs.status = "Suspended"
  hs.message = "healthgate " .. gated.reason .. ": " .. (gated.message or "")
  return hs
end

local progressing = condition(status, "Progressing")
if progressing ~= nil and progressing.reason == "ProgressDeadlineExceeded" then
  hs.status = "Degraded"
  hs.message = "Deployment \"" .. name .. "\" exceeded its progress deadline"
  return hs
end

local replicas = spec.replicas
if replicas == nil then
  replicas = 1
end
local updated = status.updatedReplicas or 0
local current = status.replicas or 0
local available = status.availableReplicas or 0
if updated < replicas then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. updated .. " out of " .. replicas .. " new replicas have been updated..."
elseif current > updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. (current - updated) .. " old replicas are pending termination..."
elseif available < updated then
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: " .. available .. " of " .. updated .. " updated replicas are available..."
elseif gated ~= nil and gated.status == "Unknown" then
  hs.status = "Progressing"
  hs.message = "healthgate " .. (gated.reason or "") .. ": " .. (gated.message or "")
else
  hs.status = "Healthy"
end
return hs
