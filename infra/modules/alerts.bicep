// Log search alert rules on the Log Analytics workspace behind Application Insights (its tables:
// AppTraces, AppRequests, ...), all sent to one action group that e-mails the operators. Each
// rule's query is a file in infra/alerts/; README, "Operations", says what each alert means and
// what to do first. A rule fires when its query returns a row in the window, and resolves by
// itself when the query no longer does (autoMitigate), so an alert is mailed once per episode.

@description('Resource ID of the Log Analytics workspace the rules query.')
param workspaceId string

@description('Region of the rules (the workspace\'s).')
param location string

@description('Tags of the action group and the rules.')
param tags object

@description('<service>-<environment>, in the resources\' names.')
param baseName string

@description('E-mail address of the operators; the action group sends every alert to it.')
param alertEmail string

// severity: 0 critical, 1 error, 2 warning (Azure Monitor's scale).
var rules = [
  {
    name: 'poison-queue'
    displayName: 'Poison queue not empty'
    description: 'A background job failed 5 times and waits in the poison queue. README, Operations.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/poison-queue.kql')
  }
  {
    name: 'operator-alert'
    displayName: 'OPERATOR ALERT logged'
    description: 'The service logged OPERATOR ALERT: the app\'s credential or registration is refused. README, Operations.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/operator-alert.kql')
  }
  {
    name: 'http-5xx'
    displayName: 'HTTP 5xx rate above 5%'
    description: 'More than 5% of the API\'s answers were 5xx. README, Operations.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/http-5xx.kql')
  }
  {
    name: 'graph-429'
    displayName: 'Microsoft Graph throttling above 10%'
    description: 'More than 10% of the calls to Microsoft Graph were answered 429. README, Operations.'
    severity: 2
    frequency: 'PT5M'
    window: 'PT15M'
    query: loadTextContent('../alerts/graph-429.kql')
  }
  {
    name: 'subscription-renewal'
    displayName: 'Graph subscription renewals failing'
    description: 'Renewing Graph change-notification subscriptions failed 3 or more times. README, Operations.'
    severity: 2
    frequency: 'PT10M'
    window: 'PT30M'
    query: loadTextContent('../alerts/subscription-renewal.kql')
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${baseName}-operators'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: take(replace(baseName, '-', ''), 12)
    enabled: true
    emailReceivers: [
      {
        name: 'operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: 'alert-${baseName}-${rule.name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${baseName}: ${rule.displayName}'
    description: rule.description
    severity: rule.severity
    enabled: true
    evaluationFrequency: rule.frequency
    windowSize: rule.window
    scopes: [
      workspaceId
    ]
    criteria: {
      allOf: [
        {
          query: rule.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
