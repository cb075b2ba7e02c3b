-- Argo CD health check for healthgate.io/HealthTarget (the per-Deployment record, `htgt`).
-- Install: argocd-cm key resource.customizations.health.healthgate.io_HealthTarget (docs/argocd.md).
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

local function said(prefix, text)
  if text == nil or text == "" then
    return prefix
  end
  return prefix .. ": " .. text
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for healthgate to record Deployment " .. ((obj.spec or {}).deployment or obj.metadata.name)
  return hs
end

-- Panic mode publishes unready pods: the Deployment's readiness collapsed.
local panic = status.panic
if panic ~= nil and panic.phase == "Panicking" then
  hs.status = "Degraded"
  hs.message = said("panic mode " .. (panic.reason or ""), panic.message)
  return hs
end

local rollout = status.rollout
local phase = rollout and rollout.phase
if phase == "Aborted" then
  -- Rolled back or not, the revision failed: Degraded (the message says whether it was rolled back).
  hs.status = "Degraded"
  hs.message = said(rollout.reason or "RolloutAborted", rollout.message)
  return hs
end
if phase == "Holding" or phase == "Inconclusive" then
  hs.status = "Suspended"
  hs.message = said(rollout.reason or phase, rollout.message)
  return hs
end
if phase == "Progressing" or phase == "Baking" then
  hs.status = "Progressing"
  hs.message = said("rollout " .. phase, rollout.message)
  return hs
end

-- Enforce: the live template does not carry the released decision for a lasting reason.
local enforced = condition(status, "Enforced")
if enforced ~= nil and enforced.status == "False" then
  if enforced.reason == "Releasing" then
    hs.status = "Progressing"
  else
    hs.status = "Degraded"
  end
  hs.message = said(enforced.reason or "NotEnforced", enforced.message)
  return hs
end

hs.status = "Healthy"
if rollout ~= nil and rollout.message ~= nil then
  hs.message = rollout.message
elseif enforced ~= nil then
  hs.message = said(enforced.reason or "Enforced", enforced.message)
else
  hs.message = "recorded by healthgate"
end
return hs
