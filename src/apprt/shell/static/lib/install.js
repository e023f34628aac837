// The install engine's API, as the shell uses it (one place to adapt if it changes).
//
//   GET    /api/v1/orgs/{org}/installations/{app}/consent?range=   what to consent to
//   POST   /api/v1/orgs/{org}/installations   {app, range, consent}   -> {job_id, ...}
//   GET    /api/v1/orgs/{org}/installations                      the organization's apps
//   DELETE /api/v1/orgs/{org}/installations/{app}                -> {job_id, ...}

import { api } from "./api.js";

/** The permission vocabulary (docs/manifest.md), to explain a permission to a person. */
const KINDS = {
  state: ["keep its own data for this organization", false],
  "identity:read": ["look up users and roles of the organization", false],
  "dataroom:read": ["read data-room documents you can read", false],
  "dataroom:write": ["create and change data-room documents", true],
  "companions:message": ["send messages to the organization's AI companions", true],
  "notifications:send": ["notify users of the organization", false],
  "events:publish": ["publish events on a shared topic", false],
  "events:subscribe": ["receive events of a shared topic", false],
  "tools:call": ["call MCP tools", false],
  network: ["connect to a host on the internet", true],
};

export function explainPermission(permission) {
  const text = typeof permission === "string" ? permission : permission.permission;
  const kind = text.startsWith("network:")
    ? "network"
    : Object.keys(KINDS).find((k) => text === k || text.startsWith(`${k}:`)) || text;
  const [description, sensitive] = KINDS[kind] || ["", false];
  const argument = text.length > kind.length ? text.slice(kind.length + 1) : "";
  return {
    permission: text,
    description: argument ? `${description}: ${argument}` : description,
    sensitive: typeof permission === "object" && "sensitive" in permission ? Boolean(permission.sensitive) : sensitive,
    reason: typeof permission === "object" ? permission.reason || "" : "",
  };
}

/**
 * What installing `appId` at exactly `version` asks for: {app, version, plan: [{app_id,
 * version, requested}], permissions: [{app_id, version, requested, permissions: [{permission,
 * reason, sensitive}]}], config_schema, config_defaults, notices} (org admins).
 */
export function consent(org, appId, version) {
  return api(`/api/v1/orgs/${org}/installations/${encodeURIComponent(appId)}/consent?range=${encodeURIComponent(version)}`);
}

/** Install exactly `version`, consenting per app ({app id: [permission]}); the job id. */
export async function install(org, appId, version, consented) {
  const answer = await api(`/api/v1/orgs/${org}/installations`, {
    method: "POST",
    body: { app: appId, range: version, consent: consented },
  });
  return answer.job_id;
}

export async function uninstall(org, appId) {
  const answer = await api(`/api/v1/orgs/${org}/installations/${encodeURIComponent(appId)}`, { method: "DELETE" });
  return answer.job_id;
}

export function installations(org) {
  return api(`/api/v1/orgs/${org}/installations`);
}
