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
        </style></head><body>
        {{#person}}<header><strong>Persona</strong><a href="/decisions">Decisions</a>
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
        <button>Filter</button></form>
        <table id="decisions"><thead><tr><th>id</th><th>decided</th><th>order</th><th>user</th><th>amount</th>
        <th>score</th><th>action</th><th>reasons</th><th>label</th></tr></thead>
        <tbody id="rows">{{{rows}}}</tbody></table>
        {{#next}}<p><a id="next" href="{{next}}">Older decisions</a></p>{{/next}}
        <script>
        // New decisions of the same filters appear at the top without a reload.
        setInterval(async () => {
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
        <h2>Label</h2>
        <p id="label">{{#label}}Labelled <strong>{{label}}</strong> by {{label_source}}{{/label}}{{^label}}Not labelled{{/label}}</p>
        {{#can_label}}{{#kinds}}<form class="inline" method="post" action="/decisions/{{id}}/label">
        <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="kind" value="{{kind}}">
        <button id="label-{{kind}}">{{kind}}</button></form> {{/kinds}}{{/can_label}}
        <h2>The user's other decisions</h2>
        <table>{{#others}}<tr><td><a href="/decisions/{{id}}">{{id}}</a></td><td>{{decided}}</td><td>{{order}}</td><td>{{score}}</td>
        <td class="{{action}}">{{action}}</td></tr>{{/others}}</table>
        <h2>Features</h2>
        <table id="features">{{#features}}<tr><td>{{name}}</td><td>{{value}}</td></tr>{{/features}}</table>
        {{/decision}}
        """

    static let message = """
        <h1>{{title}}</h1><p id="message">{{message}}</p>
        """

    /// Every template, compiled once at start.
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [
            ("layout", layout), ("signin", signIn), ("decisions", decisions), ("rows", rows), ("decision", decision),
            ("message", message),
        ] {
            library.register(try MustacheTemplate(string: text), named: name)
        }
        return library
    }
}
