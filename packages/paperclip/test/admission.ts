/** A complete admission case, as the tests' tasks give it. */
export const ADMISSION = {
  consumer: 'end-user',
  painPoint: 'login page is slow',
  expectedValue: 'reduce load time by 40%',
  validationPath: 'benchmark test suite',
} as const;
