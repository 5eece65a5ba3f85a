/**
 * Registration-authority roles (seed 000: "Which roles can do this?") and what
 * each may do. Every console route names the permission it needs; this table
 * is the only place that says who has it.
 */
import type { Role } from '../db/schema.js';

export type { Role };

export const ROLES: readonly Role[] = ['ra_manager', 'ra_agent_advanced', 'ra_agent', 'auditor'];

export const roleLabels: Record<Role, string> = {
  ra_manager: 'RA Manager',
  ra_agent_advanced: 'RA Agent (Advanced)',
  ra_agent: 'RA Agent',
  auditor: 'Auditor',
};

export const roleDescriptions: Record<Role, string> = {
  ra_manager: 'Everything an advanced agent can do, plus granting and revoking roles, editing email templates, registering services, setting the authenticator policy, making API tokens for other systems and managing webhooks.',
  ra_agent_advanced: 'Add users, issue and remove authenticators.',
  ra_agent: 'Find users and view their profiles and activity; cannot change them.',
  auditor: 'Read and export the audit log.',
};

/** Everything the console lets an agent do; each console route declares one of these. */
export const PERMISSIONS = [
  'users.view',
  'users.add',
  'users.edit',
  'authenticators.issue',
  'authenticators.remove',
  'roles.manage',
  'templates.manage',
  'services.manage',
  'policy.manage',
  'audit.read',
  'api_tokens.manage',
  'webhooks.manage',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(value: unknown): value is Permission {
  return (PERMISSIONS as readonly unknown[]).includes(value);
}

const AGENT: Permission[] = ['users.view'];
const ADVANCED: Permission[] = [...AGENT, 'users.add', 'users.edit', 'authenticators.issue', 'authenticators.remove'];

const permissions: Record<Role, readonly Permission[]> = {
  ra_agent: AGENT,
  ra_agent_advanced: ADVANCED,
  ra_manager: [...ADVANCED, 'roles.manage', 'templates.manage', 'services.manage', 'policy.manage', 'audit.read', 'api_tokens.manage', 'webhooks.manage'],
  auditor: ['audit.read'],
};

export function can(roles: readonly Role[], permission: Permission): boolean {
  return roles.some((role) => permissions[role].includes(permission));
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}
