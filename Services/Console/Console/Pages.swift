import Mustache

/// The console's pages as Mustache templates, compiled into the binary: `{{x}}` escapes
/// HTML, so nothing a service returns is ever read as markup. One layout wraps every page.
enum Pages {
    static let layout = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>{{title}} · Persona risk console</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2330}
        header{background:#1d2330;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
        header a{color:#cfd8ea;text-decoration:none} header .who{margin-left:auto}
        main{padding:16px} table{border-collapse:collapse;width:100%} td,th{padding:4px 8px;border-bottom:1px solid #e3e6ee;text-align:left}
        .allow{color:#1a7f37}.review,.challenge{color:#9a6700}.decline{color:#cf222e}
        .bar{display:inline-block;height:10px;background:#cf222e}.bar.neg{background:#1a7f37}
        .error{color:#cf222e} form.inline{display:inline} .filters input,.filters select{margin-right:8px}
        textarea{font:13px/1.4 monospace;width:100%;height:14em} pre{background:#f6f8fa;padding:8px}
        .added{background:#e6ffec}.removed{background:#ffebe9}
        </style></head><body>
        {{#person}}<header><strong>Persona</strong><a href="/dashboard">Dashboard</a><a href="/decisions">Decisions</a>
        <a href="/cases">Cases</a><a href="/rules">Rules</a><a href="/lists">Lists</a>{{#admin}}<a href="/audit">Audit</a>{{/admin}}
        <span class="who">{{name}} ({{role}})</span>
        <form class="inline" method="post" action="/signout"><input type="hidden" name="csrf" value="{{csrf}}">
        <button id="signout">Sign out</button></form></header>{{/person}}
        <main>{{{body}}}</main></body></html>
        """

    static let signIn = """
        <h1>Sign in</h1>
        {{#error}}<p class="error" id="error">{{error}}</p>{{/error}}
        <form method="post" action="/signin">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <p><label>Name <input name="name" id="name" autocomplete="username" required></label></p>
        <p><label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label></p>
        <p><button id="submit">Sign in</button></p></form>
        """

    static let decisions = """
        <h1>Decisions</h1>
        <form class="filters" method="get" action="/decisions">
        <select name="action"><option value="">any action</option>
        {{#actions}}<option{{#selected}} selected{{/selected}}>{{name}}</option>{{/actions}}</select>
        <input name="min_score" size="5" placeholder="score from" value="{{min_score}}">
        <input name="max_score" size="5" placeholder="to" value="{{max_score}}">
        <input name="reason" placeholder="rule or reason" value="{{reason}}">
        <select name="label"><option value="">any label</option>
        {{#labels}}<option{{#selected}} selected{{/selected}}>{{name}}</option>{{/labels}}</select>
        <input name="user" size="8" placeholder="user" value="{{user}}">
        <input name="order" placeholder="order" value="{{order}}">
        <input name="from" type="date" value="{{from}}"> <input name="to" type="date" value="{{to}}">
        <select name="sort" id="sort">{{#sorts}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{name}}</option>{{/sorts}}
        </select> <button>Filter</button></form>
        <table id="decisions"><thead><tr><th>id</th><th>decided</th><th>order</th><th>user</th><th>amount</th>
        <th>score</th><th>action</th><th>reasons</th><th>label</th></tr></thead>
        <tbody id="rows">{{{rows}}}</tbody></table>
        {{#next}}<p><a id="next" href="{{next}}">Older decisions</a></p>{{/next}}
        <script>
        // New decisions of the same filters appear at the top without a reload (newest first only).
        if (!new URLSearchParams(location.search).get('sort')) setInterval(async () => {
          const top = document.querySelector('#rows tr');
          const after = top ? top.dataset.id : '0';
          const r = await fetch('/decisions/rows' + location.search + (location.search ? '&' : '?') + 'after=' + after);
          if (r.ok) { const html = await r.text(); if (html) document.getElementById('rows').insertAdjacentHTML('afterbegin', html); }
        }, 3000);
        </script>
        """

    static let rows = """
        {{#decisions}}<tr data-id="{{id}}"><td><a href="/decisions/{{id}}">{{id}}</a></td><td>{{decided}}</td><td>{{order}}</td>
        <td>{{user}}</td><td>{{amount}}</td><td>{{score}}</td><td class="{{action}}">{{action}}</td><td>{{reasons}}</td>
        <td>{{label}}</td></tr>
        {{/decisions}}
        """

    static let decision = """
        {{#decision}}
        <h1>Decision {{id}}: <span class="{{action}}" id="action">{{action}}</span>, score {{score}}</h1>
        <p>Order <strong id="order">{{order}}</strong> of user {{user}}, {{amount}} {{currency}}, decided {{decided}}
        in {{latency}} µs. Model {{model}}, rules v{{rules}}{{#degraded}}, <strong>degraded</strong> (features unavailable){{/degraded}}.
        Device {{device}}, IP {{ip}}, channel {{channel}}.</p>
        <h2>Reasons</h2>
        <table id="reasons"><tr><th>kind</th><th>code</th><th>description</th><th>contribution</th></tr>
        {{#reasons}}<tr><td>{{kind}}</td><td>{{code}}</td><td>{{description}}</td>
        <td><span class="bar{{#negative}} neg{{/negative}}" style="width:{{width}}px"></span> {{contribution}}</td></tr>{{/reasons}}
        </table>
        <p><a href="/decisions/{{id}}/replay" id="replay">Replay</a>: make it again from its stored inputs and versions.
        {{#has_case}}<a href="/cases/{{id}}" id="case">Its case</a>{{/has_case}}</p>
        <h2>Label</h2>
        <p id="label">{{#label}}Labelled <strong>{{label}}</strong> by {{label_source}}{{/label}}{{^label}}Not labelled{{/label}}</p>
        {{#can_label}}{{#kinds}}<form class="inline" method="post" action="/decisions/{{id}}/label">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="kind" value="{{kind}}">
        <button id="label-{{kind}}">{{kind}}</button></form> {{/kinds}}{{/can_label}}
        <h2>The user's recent events</h2>
        <p>{{timeline_note}}</p>
        <table id="timeline">{{#timeline}}<tr{{#failed}} class="removed"{{/failed}}><td>{{at}}</td><td>{{kind}}</td><td>{{what}}</td>
        <td>device {{device}}</td><td>IP {{ip}}</td></tr>{{/timeline}}</table>
        <h2>The user's other decisions</h2>
        <table>{{#others}}<tr><td><a href="/decisions/{{id}}">{{id}}</a></td><td>{{decided}}</td><td>{{order}}</td><td>{{score}}</td>
        <td class="{{action}}">{{action}}</td></tr>{{/others}}</table>
        <h2>Other accounts on the same device or IP</h2>
        <table id="sharing"><tr><th>seen on</th><th>user</th><th>decisions</th></tr>
        {{#same_device}}<tr><td>device</td><td><a href="/decisions?user={{user}}">{{user}}</a></td><td>{{decisions}}</td></tr>
        {{/same_device}}
        {{#same_ip}}<tr><td>IP</td><td><a href="/decisions?user={{user}}">{{user}}</a></td><td>{{decisions}}</td></tr>{{/same_ip}}
        </table>
        <h2>Features</h2>
        <table id="features">{{#features}}<tr><td>{{name}}</td><td>{{value}}</td></tr>{{/features}}</table>
        {{/decision}}
        """

    static let rules = """
        <h1>Rules</h1>
        <p>In force: <strong id="active">v{{active}}</strong>; shadow: {{shadow}}.</p>
        {{#notice}}<pre class="error" id="notice">{{notice}}</pre>{{/notice}}
        <form method="post" action="/rules/backtest" id="draft">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <textarea name="source" id="source" spellcheck="false">{{source}}</textarea>
        <ul id="errors" class="error"></ul><p id="valid"></p>
        <p>Backtest over decisions from <input name="from" type="date"> to <input name="to" type="date">
        <button id="backtest">Backtest the draft</button>
        {{#can_publish}}<button formaction="/rules/publish" id="publish">Publish</button>
        <button formaction="/rules/publish" name="shadow" value="1" id="publish-shadow">Publish as shadow</button>{{/can_publish}}</p>
        </form>
        {{#four_eyes}}<h2>Drafts awaiting a second person</h2>
        <table id="drafts">{{#drafts}}<tr><td>draft {{id}}{{#shadow}} (shadow){{/shadow}}</td><td>by {{author}}, {{created}}</td>
        <td><pre>{{source}}</pre></td><td>{{#can_review}}<form class="inline" method="post" action="/rules/review">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="draft" value="{{id}}">
        <button name="decision" value="approve" id="approve-{{id}}">Approve and publish</button>
        <button name="decision" value="reject" id="reject-{{id}}">Reject</button></form>{{/can_review}}</td></tr>{{/drafts}}</table>
        {{/four_eyes}}
        <h2>Versions</h2>
        <form class="filters" method="get" action="/rules/diff">Diff v<input name="a" size="3" id="diff-a"> with
        v<input name="b" size="3" id="diff-b"> <button id="diff">Diff</button></form>
        <table id="history"><tr><th>version</th><th>published</th><th>rules</th><th></th><th></th></tr>
        {{#history}}<tr><td>v{{version}}{{#shadow}} (shadow){{/shadow}}{{#in_force}} <strong>in force</strong>{{/in_force}}</td>
        <td>{{published}}</td><td>{{rules}}</td><td><a href="/rules?from={{version}}">edit from it</a></td>
        <td>{{#previous}}<a href="/rules/diff?a={{previous}}&amp;b={{version}}">diff with v{{previous}}</a>{{/previous}}</td>
        </tr>{{/history}}
        </table>
        <script>
        // Validation as you type: risk-control compiles the draft; errors name line and column.
        const source = document.getElementById('source');
        let timer, asked = 0;
        async function check() {
          const mine = ++asked;
          const body = new URLSearchParams({csrf: document.querySelector('[name=csrf]').value, source: source.value});
          const r = await fetch('/rules/validate', {method: 'POST', body});
          if (!r.ok || mine !== asked) return;  // an answer to an older draft arriving late is dropped
          const answer = await r.json();
          const list = document.getElementById('errors');
          list.replaceChildren(...answer.errors.map(e => {
            const li = document.createElement('li');
            li.textContent = 'line ' + e.line + ', column ' + e.column + ': ' + e.message;
            return li;
          }));
          document.getElementById('valid').textContent = answer.errors.length ? '' : answer.rules + ' rules, valid';
        }
        source.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(check, 300); });
        check();
        </script>
        """

    static let backtest = """
        <h1>Backtest of the draft</h1>
        {{#errors}}<p class="error">line {{line}}, column {{column}}: {{message}}</p>{{/errors}}
        {{#valid}}
        <p id="summary">{{decisions}} stored decisions replayed{{#some_degraded}} ({{degraded}} made without features){{/some_degraded}};
        <strong>{{flipped}}</strong> would be decided otherwise.</p>
        <table id="outcome"><tr><th></th><th>precision</th><th>recall</th><th>decline rate</th><th>flagged</th><th>labelled</th></tr>
        {{#current}}<tr><td>rules in force</td><td>{{precision}}</td><td>{{recall}}</td><td>{{decline_rate}}</td><td>{{flagged}}</td>
        <td>{{labelled}}</td></tr>{{/current}}
        {{#candidate}}<tr><td>draft</td><td>{{precision}}</td><td>{{recall}}</td><td>{{decline_rate}}</td><td>{{flagged}}</td>
        <td>{{labelled}}</td></tr>{{/candidate}}</table>
        <h2>What changes</h2>
        <table>{{#changes}}<tr><td class="{{from}}">{{from}}</td><td>to</td><td class="{{to}}">{{to}}</td>
        <td>{{count}}</td></tr>{{/changes}}</table>
        <h2>Examples</h2>
        <table>{{#examples}}<tr><td>{{order}}</td><td class="{{from}}">{{from}}</td><td class="{{to}}">{{to}}</td>
        <td>{{label}}</td></tr>{{/examples}}</table>
        {{/valid}}
        <form method="post" action="/rules/publish"><input type="hidden" name="csrf" value="{{csrf}}">
        <textarea name="source">{{source}}</textarea>
        {{#can_publish}}{{#valid}}<button id="publish">Publish</button>
        <button name="shadow" value="1" id="publish-shadow">Publish as shadow</button>{{/valid}}{{/can_publish}}</form>
        """

    static let diff = """
        <h1>Rules v{{a}} to v{{b}}</h1>
        <pre id="diff">{{#lines}}<div class="{{kind}}">{{mark}} {{text}}</div>{{/lines}}</pre>
        """

    static let lists = """
        <h1>Lists</h1>
        {{#notice}}<p class="error" id="notice">{{notice}}</p>{{/notice}}
        <p>Checked before rules and model. Devices, IPs, instruments and e-mails are stored pseudonymised.
        <a href="/lists.csv" id="download">Download as CSV</a></p>
        <table id="entries"><tr><th>list</th><th>field</th><th>value</th><th>reason</th><th>added</th><th>expires</th><th></th></tr>
        {{#entries}}<tr{{#expired}} class="removed"{{/expired}}><td>{{list}}</td><td>{{field}}</td><td>{{value}}</td><td>{{reason}}</td>
        <td>{{added}}</td><td>{{expires}}{{#expired}} (expired){{/expired}}</td>
        <td>{{#can_edit}}<form class="inline" method="post" action="/lists/remove"><input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="list" value="{{list}}"><input type="hidden" name="field" value="{{field}}">
        <input type="hidden" name="value" value="{{value}}"><button>Remove</button></form>{{/can_edit}}</td></tr>{{/entries}}
        </table>
        {{#can_edit}}
        <h2>Add an entry</h2>
        <form method="post" action="/lists/add" class="filters"><input type="hidden" name="csrf" value="{{csrf}}">
        <select name="list" id="list"><option>block</option><option>allow</option></select>
        <select name="field" id="field">{{#fields}}<option>{{.}}</option>{{/fields}}</select>
        <input name="value" id="value" placeholder="value" required> <input name="reason" id="reason" placeholder="reason">
        expires <input name="expires" type="date"> <button id="add">Add</button></form>
        <h2>Add from CSV</h2>
        <form method="post" action="/lists/import"><input type="hidden" name="csrf" value="{{csrf}}">
        <p>Lines of <code>list,field,value,reason,expires</code> (expires: yyyy-mm-dd or empty; a header line is skipped).
        <input type="file" id="file" accept=".csv,text/csv"></p>
        <textarea name="csv" id="csv"></textarea><p><button id="import">Add these</button></p></form>
        <script>
        document.getElementById('file').addEventListener('change', async e => {
          const f = e.target.files[0]; if (f) document.getElementById('csv').value = await f.text();
        });
        </script>
        {{/can_edit}}
        """

    static let dashboard = """
        <h1>Dashboard</h1>
        <p id="model">Model: {{model}}.</p>
        <p id="summary">{{decisions}} decisions in this hour and the 24 before; over the {{labelled}} labelled ones,
        precision {{precision}},
        recall {{recall}}; decline rate {{decline_rate}}.</p>
        <div>{{{per_hour}}} {{{histogram}}}</div>
        <h2>Rules in force, over the last 7 days</h2>
        <table id="rule-hits"><tr><th>rule</th><th>action</th><th>hits</th><th>labelled</th><th>false positives</th></tr>
        {{#rules}}<tr><td><a href="/decisions?reason={{rule}}">{{rule}}</a></td><td class="{{action}}">{{action}}</td><td>{{hits}}</td>
        <td>{{labelled}}</td><td>{{false_positive}}</td></tr>{{/rules}}</table>
        """

    static let audit = """
        <h1>Audit</h1>
        {{#unreachable}}<p class="error">Not read: {{unreachable}}.</p>{{/unreachable}}
        <form class="filters" method="get" action="/audit">
        <select name="service"><option value="">every service</option>
        {{#services}}<option{{#selected}} selected{{/selected}}>{{name}}</option>{{/services}}</select>
        <input name="token" size="10" placeholder="token id" value="{{token}}">
        <input name="person" size="10" placeholder="person" value="{{person}}">
        <input name="method" placeholder="method" value="{{method}}">
        <input name="from" type="date" value="{{from}}"> <input name="to" type="date" value="{{to}}">
        <button>Filter</button> <a href="{{csv}}" id="csv">Download as CSV</a></form>
        <table id="audit"><tr><th>time</th><th>service</th><th>token</th><th>role</th><th>for</th><th>method</th><th>status</th>
        <th>what</th></tr>
        {{#entries}}<tr><td>{{time}}</td><td>{{service}}</td><td>{{token}}</td><td>{{role}}</td><td>{{person}}</td><td>{{method}}</td>
        <td>{{status}}</td><td>{{what}}</td></tr>{{/entries}}</table>
        """

    static let replay = """
        <h1>Replay of decision <a href="/decisions/{{id}}">{{id}}</a></h1>
        {{#matches}}<p id="verdict" class="allow"><strong>Matches</strong>: the same score, action, probability and reasons.</p>{{/matches}}
        {{^matches}}<p id="verdict" class="decline"><strong>Differs</strong>:</p>
        <ul id="differences">{{#differences}}<li>{{.}}</li>{{/differences}}</ul>{{/matches}}
        <p>Model {{model}}, rules v{{rules}}. {{#notes}}{{.}}. {{/notes}}</p>
        <table id="sides"><tr><th></th><th>score</th><th>action</th><th>probability</th><th>reasons</th></tr>
        {{#stored}}<tr><td>stored</td><td>{{score}}</td><td class="{{action}}">{{action}}</td><td>{{probability}}</td>
        <td>{{#reasons}}{{kind}} <code>{{code}}</code> {{contribution}}<br>{{/reasons}}</td></tr>{{/stored}}
        {{#replayed}}<tr><td>replayed</td><td>{{score}}</td><td class="{{action}}">{{action}}</td><td>{{probability}}</td>
        <td>{{#reasons}}{{kind}} <code>{{code}}</code> {{contribution}}<br>{{/reasons}}</td></tr>{{/replayed}}</table>
        """

    static let cases = """
        <h1>Cases</h1>
        {{#notice}}<p class="error" id="notice">{{notice}}</p>{{/notice}}
        <table id="teams"><tr><th>team</th><th>open</th><th>investigating</th><th>waiting</th><th>nobody's</th><th></th></tr>
        {{#teams}}<tr{{#selected}} class="added"{{/selected}}><td><a href="/cases?team={{team}}">{{team}}</a></td><td>{{open}}</td>
        <td>{{investigating}}</td><td>{{waiting}}</td><td>{{unassigned}}</td>
        <td><form class="inline" method="post" action="/cases/take"><input type="hidden" name="csrf" value="{{csrf}}">
        <input type="hidden" name="team" value="{{team}}"><button id="take-{{team}}">Take next</button></form></td></tr>{{/teams}}
        </table>
        <form class="filters" method="get" action="/cases"><input name="team" placeholder="team" value="{{team}}">
        <select name="status"><option value="">not resolved</option>
        {{#statuses}}<option{{#selected}} selected{{/selected}}>{{name}}</option>{{/statuses}}</select>
        <label><input type="checkbox" name="mine" value="1"{{#mine}} checked{{/mine}}> mine</label> <button>Filter</button></form>
        <table id="cases"><thead><tr><th>case</th><th>opened</th><th>team</th><th>status</th><th>assignee</th><th>order</th>
        <th>user</th><th>amount</th><th>score</th><th>action</th><th>comments</th></tr></thead>
        {{#cases}}<tr><td><a href="/cases/{{id}}">{{id}}</a></td><td>{{opened}}</td><td>{{team}}</td><td>{{status}}
        {{#outcome}}({{outcome}}){{/outcome}}</td><td>{{assignee}}</td><td>{{order}}</td><td>{{user}}</td><td>{{amount}}</td>
        <td>{{score}}</td><td class="{{action}}">{{action}}</td><td>{{comments}}</td></tr>{{/cases}}</table>
        {{#next}}<p><a id="next" href="{{next}}">More cases</a></p>{{/next}}
        """

    static let `case` = """
        {{#case}}
        <h1>Case {{id}}: <span id="status">{{status}}</span>{{#outcome}}, <span id="outcome">{{outcome}}</span>{{/outcome}}</h1>
        <p>Team <strong>{{team}}</strong>, worked by <strong id="assignee">{{assignee}}</strong>.
        Opened {{opened}}, changed {{updated}}.</p>
        <p>Order <strong>{{order}}</strong> of user {{user}}, {{amount}}, score {{score}}, <span class="{{action}}">{{action}}</span>:
        {{#reasons}}<code>{{code}}</code> {{description}}; {{/reasons}} <a href="/decisions/{{id}}" id="decision">the decision</a>.</p>
        <form method="post" action="/cases/{{id}}" class="filters"><input type="hidden" name="csrf" value="{{csrf}}">
        {{^resolved}}{{#not_mine}}<button name="assign" value="me" id="assign-me">Assign to me</button>{{/not_mine}}
        <button name="assign" value="nobody" id="unassign">Back to the queue</button>{{/resolved}}
        <select name="status" id="status-select"><option value="">status…</option>
        {{#statuses}}<option>{{name}}</option>{{/statuses}}</select>
        <input name="team" placeholder="move to team" size="10"> <button id="change">Change</button></form>
        <h2>Comments and changes</h2>
        <table id="history">{{#history}}<tr><td>{{at}}</td><td>{{by}}</td><td>{{what}}</td>
        <td>{{#comment}}<pre>{{comment}}</pre>{{/comment}}</td></tr>{{/history}}</table>
        <form method="post" action="/cases/{{id}}"><input type="hidden" name="csrf" value="{{csrf}}">
        <textarea name="comment" id="comment" style="height:5em" placeholder="a comment"></textarea>
        <p><button id="add-comment">Add the comment</button>
        {{#outcomes}}<button name="outcome" value="{{name}}" id="resolve-{{name}}">Resolve: {{name}}</button> {{/outcomes}}</p></form>
        {{#resolved}}<p>Resolved: its outcome labelled the order. Set a status above to reopen it.</p>{{/resolved}}
        {{/case}}
        """

    static let message = """
        <h1>{{title}}</h1><p id="message">{{message}}</p>
        """

    /// Every template, compiled once at start.
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [
            ("layout", layout), ("signin", signIn), ("decisions", decisions), ("rows", rows), ("decision", decision),
            ("message", message), ("rules", rules), ("backtest", backtest), ("diff", diff),
            ("lists", lists), ("dashboard", dashboard), ("audit", audit), ("cases", cases), ("case", `case`), ("replay", replay),
        ] {
            library.register(try MustacheTemplate(string: text), named: name)
        }
        return library
    }
}
