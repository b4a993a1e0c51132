/**
 * The Feishu tenant a state database is bound to, as the commands see it: `check-config`
 * compares, `rebind-tenant` re-binds, `run` stops on a mismatch. The table itself is
 * `state/tenant.ts`'s.
 */
export {
  describeTenant,
  getTenantBinding,
  mismatchMessage,
  rebindTenant,
  stateSize,
  tenantDifferences,
  tenantOf,
  TenantMismatchError,
  type TenantBinding,
  type TenantIdentity,
} from '../state/tenant.js';
